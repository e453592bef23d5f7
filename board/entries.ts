import { AssertionError } from 'node:assert'
import { DecodeError, EncodeError, Reader, Writer } from '../protocol/codec.js'
import { readPoolRef, writePoolRef, type PoolRef } from '../protocol/common.js'
import { decodeEvidence, encodeEvidence, type EquivocationEvidence } from '../protocol/evidence.js'
import { readGenesis, writeGenesis, type Genesis } from '../protocol/genesis.js'
import { MAX_OBJECT_BYTES } from '../protocol/limits.js'
import { decodeSignedState, encodeSignedState, type SignedState } from '../protocol/state.js'
import { decodeStatement, encodeStatement, type PartitionStatement } from '../protocol/statement.js'
import { decodeConfEntry, type ConfEntry, type Entry } from './raft/index.js'

/** A request to evict `member` from `pool` at its state `stateNumber` with the kick-out Withdraw K(N,u). */
export interface KickoutRequest {
  pool: PoolRef
  stateNumber: number
  member: Uint8Array
}

/**
 * What a board entry holds. The Raft core's own entries are the leader's empty no-op and
 * configuration changes; every other entry starts with a version byte and a kind byte, and the
 * pool entries then carry the canonical protocol encoding of their object (protocol/).
 */
export type BoardEntry =
  | { kind: 'noop' }
  | { kind: 'config'; change: ConfEntry }
  | { kind: 'raw'; payload: Uint8Array }
  | { kind: 'genesis'; genesis: Genesis; signed: SignedState }
  | { kind: 'state'; signed: SignedState }
  | { kind: 'statement'; statement: PartitionStatement }
  | { kind: 'evidence'; evidence: EquivocationEvidence }
  | { kind: 'blocks'; count: number }
  | { kind: 'kickout'; request: KickoutRequest }
  | { kind: 'merge'; signed: SignedState }
  | { kind: 'unknown'; code: number; reason: string }

export type BoardEntryKind = BoardEntry['kind']

export const BOARD_ENTRY_VERSION = 1

/** Kind codes of board entries (second byte). */
export const ENTRY_KIND = {
  /** An opaque entry proposed through the lab API. */
  raw: 0x01,
  /** genesis encoding ‖ signed state 0 (every member's signature): opens the pool. */
  genesis: 0x02,
  /** signed state N+1 of a (sub-)pool. */
  state: 0x03,
  /** a complete partition statement. */
  statement: 0x04,
  /** equivocation evidence learned elsewhere (gossip). */
  evidence: 0x05,
  /** the simulated chain: count u32, the number of blocks mined. */
  blocks: 0x06,
  /** pool ref ‖ state number u32 ‖ member key 32: confirm the member's kick-out Withdraw. */
  kickout: 0x07,
  /** signed state N+1 of a frozen (sub-)pool that folds its partitions back into it. */
  merge: 0x08
} as const

/** Largest payload of a pool entry: a genesis and a signed state, each at most one protocol object. */
export const MAX_POOL_ENTRY_PAYLOAD_BYTES = 2 * MAX_OBJECT_BYTES
/** Blocks one `blocks` entry may mine. */
export const MAX_BLOCKS_PER_ENTRY = 10_000

/** version ‖ kind ‖ payload. */
function frame(kind: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 + payload.length)
  out[0] = BOARD_ENTRY_VERSION
  out[1] = kind
  out.set(payload, 2)
  return out
}

/** A pool entry: its payload is at most `MAX_POOL_ENTRY_PAYLOAD_BYTES`. */
function entry(kind: number, payload: Uint8Array): Uint8Array {
  if (payload.length > MAX_POOL_ENTRY_PAYLOAD_BYTES)
    throw new EncodeError('entry', `payload of ${payload.length} bytes exceeds ${MAX_POOL_ENTRY_PAYLOAD_BYTES}`)
  return frame(kind, payload)
}

/** Encodes an opaque lab entry (no pool payload limit: the Raft core's `maxEntryBytes` bounds it). */
export function encodeRawEntry(payload: Uint8Array): Uint8Array {
  return frame(ENTRY_KIND.raw, payload)
}

/** The pool's opening entry: its genesis and state 0 signed by every member. */
export function encodeGenesisEntry(genesis: Genesis, signed: SignedState): Uint8Array {
  const w = new Writer(1024)
  w.field('genesis', (w) => {
    writeGenesis(w, genesis)
  })
  w.raw(encodeSignedState(signed))
  return entry(ENTRY_KIND.genesis, w.finish())
}

export function encodeStateEntry(signed: SignedState): Uint8Array {
  return entry(ENTRY_KIND.state, encodeSignedState(signed))
}

/** A merge: state N+1 of a frozen pool, every member's signature, its balances those of its partitions now. */
export function encodeMergeEntry(signed: SignedState): Uint8Array {
  return entry(ENTRY_KIND.merge, encodeSignedState(signed))
}

export function encodeStatementEntry(statement: PartitionStatement): Uint8Array {
  return entry(ENTRY_KIND.statement, encodeStatement(statement))
}

export function encodeEvidenceEntry(evidence: EquivocationEvidence): Uint8Array {
  return entry(ENTRY_KIND.evidence, encodeEvidence(evidence))
}

/** Mines `count` simulated blocks (1..MAX_BLOCKS_PER_ENTRY). */
export function encodeBlocksEntry(count: number): Uint8Array {
  if (!Number.isInteger(count) || count < 1 || count > MAX_BLOCKS_PER_ENTRY)
    throw new EncodeError('blocks.count', `${count} is not within 1..${MAX_BLOCKS_PER_ENTRY}`)
  return entry(ENTRY_KIND.blocks, new Writer(4).u32(count, 'count').finish())
}

export function encodeKickoutEntry(request: KickoutRequest): Uint8Array {
  const w = new Writer(80)
  w.field('kickout', (w) => {
    w.field('pool', (w) => {
      writePoolRef(w, request.pool)
    })
    w.u32(request.stateNumber, 'stateNumber').bytes32(request.member, 'member')
  })
  return entry(ENTRY_KIND.kickout, w.finish())
}

/**
 * Reads a committed entry. A committed entry that cannot be read is reported as `unknown`, never
 * thrown: the log is what it is, and every node must apply it the same way.
 */
export function decodeBoardEntry(entry: Entry): BoardEntry {
  if (entry.type === 'confChange') {
    try {
      return { kind: 'config', change: decodeConfEntry(entry.data) }
    } catch (err) {
      return { kind: 'unknown', code: -1, reason: (err as Error).message }
    }
  }
  if (entry.data.length === 0) return { kind: 'noop' }
  if (entry.data[0] !== BOARD_ENTRY_VERSION)
    return { kind: 'unknown', code: -1, reason: `unsupported entry version ${entry.data[0]}` }
  const code = entry.data[1] ?? -1
  const payload = entry.data.subarray(2)
  if (code === ENTRY_KIND.raw) return { kind: 'raw', payload }
  const name = KIND_NAMES.get(code)
  if (name === undefined) return { kind: 'unknown', code, reason: `unknown entry kind ${code}` }
  if (payload.length > MAX_POOL_ENTRY_PAYLOAD_BYTES)
    return {
      kind: 'unknown',
      code,
      reason: `${name} entry: payload of ${payload.length} bytes exceeds ${MAX_POOL_ENTRY_PAYLOAD_BYTES}`
    }
  try {
    return decodePoolEntry(code, payload)
  } catch (err) {
    // Decoders throw DecodeError naming the field. Any other error on these bytes is still recorded,
    // not thrown: a committed entry that stopped every node would stop the board for good.
    if (err instanceof AssertionError) throw err
    const message = err instanceof DecodeError ? err.message : `${(err as Error).name}: ${(err as Error).message}`
    return { kind: 'unknown', code, reason: `${name} entry: ${message}` }
  }
}

/** Names of the pool entry kinds by code (raw lab entries are read before the pool ones). */
const KIND_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(ENTRY_KIND)
    .filter(([name]) => name !== 'raw')
    .map(([name, code]) => [code, name])
)

function decodePoolEntry(code: number, payload: Uint8Array): BoardEntry {
  switch (code) {
    case ENTRY_KIND.genesis: {
      // The genesis encoding is self-delimiting; the signed state runs to the end.
      const r = new Reader(payload, 'genesis')
      const genesis = readGenesis(r)
      const signed = decodeSignedState(payload.subarray(r.offset))
      return { kind: 'genesis', genesis, signed }
    }
    case ENTRY_KIND.state:
      return { kind: 'state', signed: decodeSignedState(payload) }
    case ENTRY_KIND.merge:
      return { kind: 'merge', signed: decodeSignedState(payload) }
    case ENTRY_KIND.statement:
      return { kind: 'statement', statement: decodeStatement(payload) }
    case ENTRY_KIND.evidence:
      return { kind: 'evidence', evidence: decodeEvidence(payload) }
    case ENTRY_KIND.blocks: {
      const r = new Reader(payload, 'blocks')
      const count = r.u32('count')
      r.end()
      return { kind: 'blocks', count }
    }
    case ENTRY_KIND.kickout: {
      const r = new Reader(payload, 'kickout')
      const pool = readPoolRef(r, 'pool')
      const stateNumber = r.u32('stateNumber')
      const member = r.bytes32('member')
      r.end()
      return { kind: 'kickout', request: { pool, stateNumber, member } }
    }
  }
  throw new Error(`unreachable: entry kind ${code} has a name but no decoder`)
}

/** The payload a client sees for an entry: the raw payload for lab entries, the full data otherwise. */
export function entryPayload(entry: Entry, decoded: BoardEntry): Uint8Array {
  return decoded.kind === 'raw' ? decoded.payload : entry.data
}
