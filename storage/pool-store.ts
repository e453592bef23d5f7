import assert from 'node:assert/strict'
import type { BoardEntryKind } from '../board/entries.js'
import type {
  ApplyOutcome,
  ApplyResult,
  BoardMeta,
  EvidenceRecord,
  EvidenceSource,
  KickoutRecord,
  PoolBoardChange,
  PoolBoardSnapshot,
  PoolRecord,
  PoolStatus,
  StateProof,
  StatementRecord,
  StatementStatus
} from '../board/pool-board.js'
import { copyBytes, equalBytes, toHex } from '../protocol/bytes.js'
import { DecodeError, Writer, decodeAll, type Reader } from '../protocol/codec.js'
import {
  decodePoolRef,
  encodePoolRef,
  equalPoolRefs,
  readPoolRef,
  readStateRef,
  writePoolRef,
  writeStateRef,
  type Outpoint,
  type PoolRef
} from '../protocol/common.js'
import { decodeEvidence, encodeEvidence, evidenceId } from '../protocol/evidence.js'
import { decodeGenesis, encodeGenesis } from '../protocol/genesis.js'
import { MAX_EVIDENCE_PER_MEMBER, MAX_MEMBERS, MAX_OBJECT_BYTES, MAX_REASON_CHARS } from '../protocol/limits.js'
import { decodeSignedState, decodeState, encodeSignedState, encodeState } from '../protocol/state.js'
import { decodeStatement, encodeStatement, statementId } from '../protocol/statement.js'
import { decodeTx, encodeTx, txid } from '../protocol/tx.js'
import { PREFIX, type Database } from './database.js'
import { StoreCorruptError, type BatchOp } from './raft-store.js'

/**
 * The pool board on LevelDB.
 *
 * `PoolBoard.apply` returns the typed changes it made; `poolChangeOps` turns them into batch
 * operations that the Raft driver writes in the same batch as the applied index, so the stored
 * pool state always matches the applied index, crash or not. `loadPoolBoardSnapshot` reads the
 * records back at start-up without verifying a signature again or replaying the log.
 *
 * Keys (one-byte prefixes, see database.ts):
 *
 *     poolMeta                                  -> applied index, chain height, genesis
 *     poolState     + pool ref encoding         -> status, created/updated index, closed-by txid, proof, current state
 *     poolSpent     + txid 32 + vout u32 BE     -> id of the accepted statement spending it
 *     poolStatement + statement id 32           -> status, index, reason, conflicts-with, evidence ids, parent, statement (accepted)
 *     poolEvidence  + evidence id 32            -> index, source, evidence
 *     poolKickout   + txid 32                   -> pool, state, member, exit, height, index, continuation, tx
 *     poolResult    + board index u64 BE        -> the entry's result
 *
 * Every value starts with a version byte and uses the protocol codec; pool objects inside are
 * their canonical protocol encodings. A record that does not decode, or does not match its key,
 * stops the load with a StoreCorruptError naming the key.
 */

const RECORD_VERSION = 1
const META_KEY = Uint8Array.of(PREFIX.poolMeta)
const POOL_BOARD_PREFIXES = [
  PREFIX.poolMeta,
  PREFIX.poolState,
  PREFIX.poolSpent,
  PREFIX.poolStatement,
  PREFIX.poolEvidence,
  PREFIX.poolKickout,
  PREFIX.poolResult
]
const MAX_REASON_BYTES = 4 * MAX_REASON_CHARS
/** Evidence one entry can produce: every member convicted to the per-member limit. */
const MAX_EVIDENCE_IDS = MAX_MEMBERS * MAX_EVIDENCE_PER_MEMBER
/** Entries replayed per batch when the pool board catches up with the Raft log. */

// ---- keys ----

function prefixed(prefix: number, body: Uint8Array): Uint8Array {
  const key = new Uint8Array(1 + body.length)
  key[0] = prefix
  key.set(body, 1)
  return key
}

export function poolStateKey(ref: PoolRef): Uint8Array {
  return prefixed(PREFIX.poolState, encodePoolRef(ref))
}

export function spentKey(o: Outpoint): Uint8Array {
  return prefixed(PREFIX.poolSpent, new Writer(36).bytes32(o.txid, 'txid').u32be(o.vout, 'vout').finish())
}

export function statementKey(id: Uint8Array): Uint8Array {
  return prefixed(PREFIX.poolStatement, id)
}

function evidenceKey(id: Uint8Array): Uint8Array {
  return prefixed(PREFIX.poolEvidence, id)
}

function kickoutKey(id: Uint8Array): Uint8Array {
  return prefixed(PREFIX.poolKickout, id)
}

export function resultKey(index: number): Uint8Array {
  return prefixed(PREFIX.poolResult, new Writer(8).u64be(BigInt(index), 'index').finish())
}

// ---- changes to batch operations ----

/**
 * The batch operations recording `changes` (in order: a later put of the same key wins). Every
 * applied entry rewrites the meta record (applied index, chain height, genesis); in one batch only
 * the last one matters, so the others are not encoded at all.
 */
export function poolChangeOps(changes: readonly PoolBoardChange[]): BatchOp[] {
  let lastMeta = -1
  for (let i = changes.length - 1; i >= 0 && lastMeta < 0; i--) if (changes[i].type === 'meta') lastMeta = i
  return changes
    .filter((c, i) => c.type !== 'meta' || i === lastMeta)
    .map((c): BatchOp => {
      switch (c.type) {
        case 'meta':
          return { type: 'put', key: META_KEY, value: encodeMeta(c.meta) }
        case 'pool':
          return { type: 'put', key: poolStateKey(c.record.state.pool.ref), value: encodePool(c.record) }
        case 'spent':
          return {
            type: 'put',
            key: spentKey(c.outpoint),
            value: new Writer(33).u8(RECORD_VERSION).bytes32(c.statementId, 'statementId').finish()
          }
        case 'statement':
          return { type: 'put', key: statementKey(c.record.id), value: encodeStatementRecord(c.record) }
        case 'statement-forgotten':
          return { type: 'del', key: statementKey(c.id) }
        case 'evidence':
          return { type: 'put', key: evidenceKey(c.record.id), value: encodeEvidenceRecord(c.record) }
        case 'kickout':
          return { type: 'put', key: kickoutKey(c.record.txid), value: encodeKickout(c.record) }
        case 'result':
          return { type: 'put', key: resultKey(c.result.index), value: encodeResult(c.result) }
        case 'result-forgotten':
          return { type: 'del', key: resultKey(c.index) }
      }
    })
}

/** Deletes every pool board record (not this member's sign memory): the board is what replaying the log gives. */
export async function clearPoolBoard(db: Database): Promise<void> {
  for (const prefix of POOL_BOARD_PREFIXES)
    await db.clear({ gte: Uint8Array.of(prefix), lt: Uint8Array.of(prefix + 1) })
}

// ---- loading ----

/**
 * The pool board recorded in `db` (an empty one if none is), as the snapshot `PoolBoard.restore`
 * takes: every record decoded and checked against its key. Throws StoreCorruptError naming the
 * damaged key. (The daemon restores the board from it: daemon/replica/pool-applier.ts.)
 */
export async function loadPoolBoardSnapshot(db: Database): Promise<PoolBoardSnapshot> {
  const metaBytes = await db.get(META_KEY)
  const snapshot: PoolBoardSnapshot = {
    meta:
      metaBytes === undefined
        ? { appliedIndex: 0, chainHeight: 0, genesis: null }
        : decodeRecord(META_KEY, 'pool board meta', metaBytes, readMeta),
    pools: [],
    spent: [],
    statements: [],
    evidence: [],
    kickouts: [],
    results: []
  }
  for await (const [key, value] of scan(db, PREFIX.poolState)) {
    const record = decodeRecord(key, 'pool state', value, readPool)
    const ref = decodeKeyPart(key, 'pool state', () => decodePoolRef(key.subarray(1)))
    if (!equalPoolRefs(ref, record.state.pool.ref))
      corrupt(key, 'pool state', 'the record is for another pool than its key')
    snapshot.pools.push(record)
  }
  for await (const [key, value] of scan(db, PREFIX.poolSpent)) {
    if (key.length !== 37) corrupt(key, 'spent outpoint', `expected a 37-byte key, got ${key.length} bytes`)
    const outpoint = {
      txid: copyBytes(key.subarray(1, 33)),
      vout: new DataView(key.buffer, key.byteOffset + 33, 4).getUint32(0)
    }
    const id = decodeRecord(key, 'spent outpoint', value, (r) => {
      r.version([RECORD_VERSION])
      return r.bytes32('statementId')
    })
    snapshot.spent.push({ outpoint, statementId: id })
  }
  for await (const [key, value] of scan(db, PREFIX.poolStatement)) {
    const record = decodeRecord(key, 'statement', value, readStatementRecord)
    if (!equalBytes(key.subarray(1), record.id)) corrupt(key, 'statement', 'the statement id differs from its key')
    if (record.statement !== null && !equalBytes(statementId(record.statement), record.id))
      corrupt(key, 'statement', 'the statement does not hash to its id')
    snapshot.statements.push(record)
  }
  for await (const [key, value] of scan(db, PREFIX.poolEvidence)) {
    const record = decodeRecord(key, 'evidence', value, (r) => readEvidenceRecord(r, copyBytes(key.subarray(1))))
    if (!equalBytes(evidenceId(record.evidence), record.id))
      corrupt(key, 'evidence', 'the evidence does not hash to its key')
    snapshot.evidence.push(record)
  }
  for await (const [key, value] of scan(db, PREFIX.poolKickout)) {
    const record = decodeRecord(key, 'kick-out', value, (r) => readKickout(r, copyBytes(key.subarray(1))))
    if (!equalBytes(txid(record.tx), record.txid)) corrupt(key, 'kick-out', 'the transaction does not hash to its key')
    snapshot.kickouts.push(record)
  }
  for await (const [key, value] of scan(db, PREFIX.poolResult)) {
    const result = decodeRecord(key, 'entry result', value, readResult)
    if (key.length !== 9 || !equalBytes(resultKey(result.index), key))
      corrupt(key, 'entry result', `the result is for entry ${result.index}, not its key's`)
    snapshot.results.push(result)
  }
  snapshot.results.sort((a, b) => a.index - b.index)
  snapshot.kickouts.sort((a, b) => a.index - b.index)
  if (metaBytes === undefined && snapshot.pools.length + snapshot.statements.length + snapshot.results.length > 0) {
    throw new StoreCorruptError('pool records are present but the pool board meta record is missing')
  }
  return snapshot
}

async function* scan(db: Database, prefix: number): AsyncGenerator<[Uint8Array, Uint8Array]> {
  for await (const [key, value] of db.iterator({ gte: Uint8Array.of(prefix), lt: Uint8Array.of(prefix + 1) }))
    yield [key, value]
}

function corrupt(key: Uint8Array, what: string, reason: string): never {
  throw new StoreCorruptError(
    `${what} record at key ${toHex(key.subarray(0, 48))}${key.length > 48 ? '…' : ''}: ${reason}`
  )
}

function decodeKeyPart<T>(key: Uint8Array, what: string, read: () => T): T {
  try {
    return read()
  } catch (err) {
    if (err instanceof DecodeError) corrupt(key, what, `bad key: ${err.message}`)
    throw err
  }
}

/** Decodes a stored value completely; any DecodeError becomes a StoreCorruptError naming the key. */
function decodeRecord<T>(key: Uint8Array, what: string, bytes: Uint8Array, read: (r: Reader) => T): T {
  try {
    return decodeAll(bytes, what, read)
  } catch (err) {
    if (err instanceof DecodeError) corrupt(key, what, err.message)
    throw err
  }
}

// ---- record encodings ----

function writeOpt32(w: Writer, bytes: Uint8Array | null, field: string): void {
  if (bytes === null) w.u8(0)
  else w.u8(1).bytes32(bytes, field)
}

function readOpt32(r: Reader, field: string): Uint8Array | null {
  return readFlag(r, field) ? r.bytes32(field) : null
}

function readFlag(r: Reader, field: string): boolean {
  const flag = r.u8(field)
  if (flag > 1) r.fail(field, `expected a presence flag 0 or 1, got ${flag}`)
  return flag === 1
}

function readCode<T>(r: Reader, field: string, values: readonly T[]): T {
  const code = r.u8(field)
  if (code >= values.length) r.fail(field, `unknown code ${code}`)
  return values[code]
}

function writeCode<T>(w: Writer, values: readonly T[], value: T, field: string): void {
  const code = values.indexOf(value)
  assert(code >= 0, `${field}: no code for ${String(value)}`)
  w.u8(code, field)
}

/** A protocol object stored with a length prefix, decoded by its own (strict) decoder. */
function readObject<T>(r: Reader, field: string, decode: (bytes: Uint8Array) => T): T {
  const bytes = r.bytes(field, MAX_OBJECT_BYTES)
  try {
    return decode(bytes)
  } catch (err) {
    if (err instanceof DecodeError) r.fail(field, err.message)
    throw err
  }
}

function writeIds(w: Writer, ids: readonly Uint8Array[], field: string): void {
  w.array(
    ids,
    MAX_EVIDENCE_IDS,
    (w, id) => {
      w.bytes32(id, '')
    },
    field
  )
}

function readIds(r: Reader, field: string): Uint8Array[] {
  return r.array(field, MAX_EVIDENCE_IDS, (r) => r.bytes32(''), 32)
}

function encodeMeta(meta: BoardMeta): Uint8Array {
  const w = new Writer(64)
    .u8(RECORD_VERSION)
    .varint(meta.appliedIndex, 'appliedIndex')
    .u32(meta.chainHeight, 'chainHeight')
  if (meta.genesis === null) w.u8(0)
  else w.u8(1).bytes(encodeGenesis(meta.genesis), MAX_OBJECT_BYTES, 'genesis')
  return w.finish()
}

function readMeta(r: Reader): BoardMeta {
  r.version([RECORD_VERSION])
  const appliedIndex = r.varint('appliedIndex')
  const chainHeight = r.u32('chainHeight')
  const genesis = readFlag(r, 'genesis') ? readObject(r, 'genesis', decodeGenesis) : null
  return { appliedIndex, chainHeight, genesis }
}

const POOL_STATUSES: readonly PoolStatus[] = ['open', 'frozen', 'closed', 'merged']
const PROOF_KINDS: ReadonlyArray<StateProof['kind']> = ['signatures', 'statement', 'kickout']

function encodePool(p: PoolRecord): Uint8Array {
  const w = new Writer(512).u8(RECORD_VERSION)
  writeCode(w, POOL_STATUSES, p.status, 'status')
  w.varint(p.createdAt, 'createdAt').varint(p.updatedAt, 'updatedAt')
  writeOpt32(w, p.closedBy, 'closedBy')
  writeCode(w, PROOF_KINDS, p.proof.kind, 'proof')
  if (p.proof.kind === 'signatures') {
    w.bytes(encodeSignedState({ state: p.state, signatures: p.proof.signatures }), MAX_OBJECT_BYTES, 'signedState')
  } else {
    w.bytes32(p.proof.kind === 'statement' ? p.proof.statementId : p.proof.kickoutTxid, 'proofId')
    w.bytes(encodeState(p.state), MAX_OBJECT_BYTES, 'state')
  }
  return w.finish()
}

function readPool(r: Reader): PoolRecord {
  r.version([RECORD_VERSION])
  const status = readCode(r, 'status', POOL_STATUSES)
  const createdAt = r.varint('createdAt')
  const updatedAt = r.varint('updatedAt')
  if (updatedAt < createdAt) r.fail('updatedAt', `${updatedAt} is before createdAt ${createdAt}`)
  const closedBy = readOpt32(r, 'closedBy')
  const proofKind = readCode(r, 'proof', PROOF_KINDS)
  if (proofKind === 'signatures') {
    const signed = readObject(r, 'signedState', decodeSignedState)
    return {
      state: signed.state,
      proof: { kind: 'signatures', signatures: signed.signatures },
      status,
      createdAt,
      updatedAt,
      closedBy
    }
  }
  const id = r.bytes32('proofId')
  const state = readObject(r, 'state', decodeState)
  const proof: StateProof =
    proofKind === 'statement' ? { kind: 'statement', statementId: id } : { kind: 'kickout', kickoutTxid: id }
  return { state, proof, status, createdAt, updatedAt, closedBy }
}

const STATEMENT_STATUSES: readonly StatementStatus[] = ['accepted', 'rejected']

function encodeStatementRecord(s: StatementRecord): Uint8Array {
  const w = new Writer(256).u8(RECORD_VERSION)
  writeCode(w, STATEMENT_STATUSES, s.status, 'status')
  w.varint(s.index, 'index').string(s.reason, MAX_REASON_BYTES, 'reason')
  writeOpt32(w, s.conflictsWith, 'conflictsWith')
  writeIds(w, s.evidenceIds, 'evidenceIds')
  w.field('parent', (w) => {
    writeStateRef(w, s.parent)
  })
  if (s.statement === null) w.u8(0)
  else w.u8(1).bytes(encodeStatement(s.statement), MAX_OBJECT_BYTES, 'statement')
  // The id last: it is the key too, and checked against it on load.
  w.bytes32(s.id, 'id')
  return w.finish()
}

function readStatementRecord(r: Reader): StatementRecord {
  r.version([RECORD_VERSION])
  const status = readCode(r, 'status', STATEMENT_STATUSES)
  const index = r.varint('index')
  const reason = r.string('reason', MAX_REASON_BYTES)
  const conflictsWith = readOpt32(r, 'conflictsWith')
  const evidenceIds = readIds(r, 'evidenceIds')
  const parent = readStateRef(r, 'parent')
  const statement = readFlag(r, 'statement') ? readObject(r, 'statement', decodeStatement) : null
  if ((statement !== null) !== (status === 'accepted'))
    r.fail('statement', 'an accepted statement, and only it, keeps its body')
  const id = r.bytes32('id')
  return { id, status, index, reason, conflictsWith, evidenceIds, parent, statement }
}

const EVIDENCE_SOURCES: readonly EvidenceSource[] = ['conflict', 'entry']

function encodeEvidenceRecord(e: EvidenceRecord): Uint8Array {
  const w = new Writer(512).u8(RECORD_VERSION).varint(e.index, 'index')
  writeCode(w, EVIDENCE_SOURCES, e.source, 'source')
  w.bytes(encodeEvidence(e.evidence), MAX_OBJECT_BYTES, 'evidence')
  return w.finish()
}

function readEvidenceRecord(r: Reader, id: Uint8Array): EvidenceRecord {
  r.version([RECORD_VERSION])
  const index = r.varint('index')
  const source = readCode(r, 'source', EVIDENCE_SOURCES)
  const evidence = readObject(r, 'evidence', decodeEvidence)
  return { id, evidence, index, source }
}

function encodeKickout(k: KickoutRecord): Uint8Array {
  const w = new Writer(256).u8(RECORD_VERSION)
  w.field('pool', (w) => {
    writePoolRef(w, k.pool)
  })
  w.u32(k.stateNumber, 'stateNumber').bytes32(k.member, 'member').varint(k.memberIndex, 'memberIndex')
  w.u64(k.exitSats, 'exitSats').u32(k.height, 'height').varint(k.index, 'index')
  if (k.continuation === null) w.u8(0)
  else
    w.u8(1).field('continuation', (w) => {
      writePoolRef(w, k.continuation as PoolRef)
    })
  w.bytes(encodeTx(k.tx), MAX_OBJECT_BYTES, 'tx')
  return w.finish()
}

function readKickout(r: Reader, id: Uint8Array): KickoutRecord {
  r.version([RECORD_VERSION])
  const pool = readPoolRef(r, 'pool')
  const stateNumber = r.u32('stateNumber')
  const member = r.bytes32('member')
  const memberIndex = r.varint('memberIndex', MAX_MEMBERS - 1)
  const exitSats = r.u64('exitSats')
  const height = r.u32('height')
  const index = r.varint('index')
  const continuation = readFlag(r, 'continuation') ? readPoolRef(r, 'continuation') : null
  const tx = readObject(r, 'tx', decodeTx)
  if (tx.outputs[0]?.valueSats !== exitSats) r.fail('exitSats', "differs from the kick-out transaction's output 0")
  return { txid: id, tx, pool, stateNumber, member, memberIndex, exitSats, height, index, continuation }
}

const ENTRY_KINDS: readonly BoardEntryKind[] = [
  'noop',
  'config',
  'raw',
  'genesis',
  'state',
  'statement',
  'evidence',
  'blocks',
  'kickout',
  'unknown',
  'merge'
]
const OUTCOMES: readonly ApplyOutcome[] = ['accepted', 'rejected', 'ignored']

function encodeResult(x: ApplyResult): Uint8Array {
  const w = new Writer(256).u8(RECORD_VERSION).varint(x.index, 'index')
  writeCode(w, ENTRY_KINDS, x.kind, 'kind')
  writeCode(w, OUTCOMES, x.outcome, 'outcome')
  w.string(x.reason, MAX_REASON_BYTES, 'reason')
  const optRef = (ref: PoolRef | null, field: string): void => {
    if (ref === null) w.u8(0)
    else
      w.u8(1).field(field, (w) => {
        writePoolRef(w, ref)
      })
  }
  const optU32 = (n: number | null, field: string): void => {
    if (n === null) w.u8(0)
    else w.u8(1).u32(n, field)
  }
  optRef(x.pool, 'pool')
  optU32(x.stateNumber, 'stateNumber')
  writeOpt32(w, x.statementId, 'statementId')
  writeOpt32(w, x.conflictsWith, 'conflictsWith')
  writeIds(w, x.evidenceIds, 'evidenceIds')
  optRef(x.createdPool, 'createdPool')
  writeOpt32(w, x.txid, 'txid')
  optU32(x.height, 'height')
  return w.finish()
}

function readResult(r: Reader): ApplyResult {
  r.version([RECORD_VERSION])
  const index = r.varint('index')
  const kind = readCode(r, 'kind', ENTRY_KINDS)
  const outcome = readCode(r, 'outcome', OUTCOMES)
  const reason = r.string('reason', MAX_REASON_BYTES)
  const pool = readFlag(r, 'pool') ? readPoolRef(r, 'pool') : null
  const stateNumber = readFlag(r, 'stateNumber') ? r.u32('stateNumber') : null
  const statementId = readOpt32(r, 'statementId')
  const conflictsWith = readOpt32(r, 'conflictsWith')
  const evidenceIds = readIds(r, 'evidenceIds')
  const createdPool = readFlag(r, 'createdPool') ? readPoolRef(r, 'createdPool') : null
  const id = readOpt32(r, 'txid')
  const height = readFlag(r, 'height') ? r.u32('height') : null
  return {
    index,
    kind,
    outcome,
    reason,
    pool,
    stateNumber,
    statementId,
    conflictsWith,
    evidenceIds,
    createdPool,
    txid: id,
    height
  }
}
