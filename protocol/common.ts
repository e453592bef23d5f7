/**
 * Field types shared by several objects, with their canonical encodings:
 * outpoints, pool references, state references, sorted member-key lists and balances.
 */
import { compareBytes, equalBytes, toHex } from './bytes.js'
import { DecodeError, EncodeError, Writer, decodeAll, type Reader } from './codec.js'
import { LOCKTIME_THRESHOLD, MAX_MEMBERS, MAX_MONEY_SATS, MAX_OBJECT_BYTES, MAX_POOL_REF_DEPTH } from './limits.js'

/** A transaction output reference: txid (32 bytes, internal byte order) and output index. */
export interface Outpoint {
  txid: Uint8Array
  vout: number
}

/**
 * Which (sub-)pool: the root pool of `poolId`, the partition created by a partition statement, or
 * the continuation of a pool after a kick-out.
 *
 * Encoded as a kind byte followed by the kind's fields:
 *
 *     0 = root
 *     1 = partition      | statementId 32
 *     2 = continuation   | parent pool ref | parentStateNumber u32 | evictedIndex varint (< 1024)
 *
 * A continuation is what remains of pool P at state N once the kick-out Withdraw K(N,u) of the
 * member at `evictedIndex` has confirmed: its funding is K(N,u)'s remainder output. It nests its
 * parent's reference, so a chain of kick-outs nests; each one removes a member, so the nesting is
 * at most `MAX_POOL_REF_DEPTH` deep (a partition starts a new chain: its reference is its id).
 */
export type PoolRef =
  | { kind: 'root' }
  | { kind: 'partition'; statementId: Uint8Array }
  | { kind: 'continuation'; parent: PoolRef; parentStateNumber: number; evictedIndex: number }

/** A state of a (sub-)pool: the pool reference and the state number (N, or sub-state k). */
export interface StateRef {
  pool: PoolRef
  stateNumber: number
}

/** The outcome of a verification that explains itself. */
export type Verdict = { ok: true } | { ok: false; reason: string }

export const OK: Verdict = Object.freeze({ ok: true })
export function fail(reason: string): Verdict {
  return { ok: false, reason }
}

/** A short printable form of a key or hash for error messages: the first 8 bytes in hex. */
export function short(bytes: Uint8Array): string {
  return toHex(bytes.subarray(0, 8))
}

/** `txid:vout` in internal byte order: a map key for an outpoint. */
export function outpointKey(o: Outpoint): string {
  return `${toHex(o.txid)}:${o.vout}`
}

export function equalOutpoints(a: Outpoint, b: Outpoint): boolean {
  return a.vout === b.vout && equalBytes(a.txid, b.txid)
}

export function equalPoolRefs(a: PoolRef, b: PoolRef): boolean {
  // Iterative over the continuation chain: a forged deep reference cannot exhaust the stack.
  let x = a
  let y = b
  for (;;) {
    if (x.kind === 'root') return y.kind === 'root'
    if (x.kind === 'partition') return y.kind === 'partition' && equalBytes(x.statementId, y.statementId)
    if (y.kind !== 'continuation' || x.parentStateNumber !== y.parentStateNumber || x.evictedIndex !== y.evictedIndex)
      return false
    x = x.parent
    y = y.parent
  }
}

/** Number of continuation levels in a reference (0 for a root pool or a partition). */
export function poolRefDepth(ref: PoolRef): number {
  let depth = 0
  for (let r = ref; r.kind === 'continuation'; r = r.parent) depth++
  return depth
}

/** Human-readable pool reference for messages (a long kick-out chain is shortened). */
export function describePoolRef(ref: PoolRef): string {
  const steps: string[] = []
  let r = ref
  while (r.kind === 'continuation') {
    steps.push(`after kick-out of member ${r.evictedIndex} at state ${r.parentStateNumber}`)
    r = r.parent
  }
  const base = r.kind === 'root' ? 'root pool' : `partition ${short(r.statementId)}`
  if (steps.length === 0) return base
  steps.reverse()
  const shown = steps.length <= 3 ? steps : [steps[0]!, `… ${steps.length - 2} more …`, steps[steps.length - 1]!]
  return `continuation of ${base} ${shown.join(', ')}`
}

export function describeStateRef(ref: StateRef): string {
  return `${describePoolRef(ref.pool)} state ${ref.stateNumber}`
}

/** Sum of balances (bigint satoshis). */
export function sumSats(balances: readonly bigint[]): bigint {
  let s = 0n
  for (const b of balances) s += b
  return s
}

/** Reject an encoding larger than `MAX_OBJECT_BYTES` before parsing it. */
export function checkObjectSize(bytes: Uint8Array, context: string): void {
  if (!(bytes instanceof Uint8Array)) throw new DecodeError(context, 'input is not a byte array')
  if (bytes.length > MAX_OBJECT_BYTES) {
    throw new DecodeError(context, `encoding is ${bytes.length} bytes, over the limit of ${MAX_OBJECT_BYTES}`)
  }
}

// ---- encoders / decoders ----

export function writeOutpoint(w: Writer, o: Outpoint): void {
  w.bytes32(o.txid, 'txid').u32(o.vout, 'vout')
}

export function readOutpoint(r: Reader, name: string): Outpoint {
  return r.field(name, (r) => ({ txid: r.bytes32('txid'), vout: r.u32('vout') }))
}

export function writePoolRef(w: Writer, ref: PoolRef, depth = 0): void {
  if (ref.kind === 'root') w.u8(0)
  else if (ref.kind === 'partition') w.u8(1).bytes32(ref.statementId, 'statementId')
  else if (ref.kind === 'continuation') {
    if (depth >= MAX_POOL_REF_DEPTH)
      throw new EncodeError('parent', `continuations nested more than ${MAX_POOL_REF_DEPTH} deep`)
    const { evictedIndex } = ref
    if (!Number.isInteger(evictedIndex) || evictedIndex < 0 || evictedIndex >= MAX_MEMBERS) {
      throw new EncodeError('evictedIndex', `${evictedIndex} is not a member index below ${MAX_MEMBERS}`)
    }
    w.u8(2)
    w.field('parent', (w) => writePoolRef(w, ref.parent, depth + 1))
    w.u32(ref.parentStateNumber, 'parentStateNumber').varint(evictedIndex, 'evictedIndex')
  } else throw new EncodeError('kind', 'unknown pool reference kind')
}

export function readPoolRef(r: Reader, name: string, depth = 0): PoolRef {
  return r.field(name, (r): PoolRef => {
    const kind = r.u8('kind')
    if (kind === 0) return { kind: 'root' } as const
    if (kind === 1) return { kind: 'partition', statementId: r.bytes32('statementId') } as const
    if (kind === 2) {
      if (depth >= MAX_POOL_REF_DEPTH) r.fail('parent', `continuations nested more than ${MAX_POOL_REF_DEPTH} deep`)
      const parent = readPoolRef(r, 'parent', depth + 1)
      const parentStateNumber = r.u32('parentStateNumber')
      const evictedIndex = r.varint('evictedIndex')
      if (evictedIndex >= MAX_MEMBERS)
        r.fail('evictedIndex', `${evictedIndex} is not a member index below ${MAX_MEMBERS}`)
      return { kind: 'continuation', parent, parentStateNumber, evictedIndex }
    }
    return r.fail('kind', `unknown pool reference kind ${kind} (0 = root, 1 = partition, 2 = continuation)`)
  })
}

/** Canonical encoding of a pool reference on its own (a map or storage key). */
export function encodePoolRef(ref: PoolRef): Uint8Array {
  const w = new Writer(64)
  w.field('pool ref', (w) => writePoolRef(w, ref))
  return w.finish()
}

/** Decode a pool reference encoded on its own; throws `DecodeError` naming the field. */
export function decodePoolRef(bytes: Uint8Array): PoolRef {
  checkObjectSize(bytes, 'pool ref')
  return decodeAll(bytes, 'pool ref', (r) => readPoolRef(r, ''))
}

export function writeStateRef(w: Writer, ref: StateRef): void {
  w.field('pool', (w) => writePoolRef(w, ref.pool))
  w.u32(ref.stateNumber, 'stateNumber')
}

export function readStateRef(r: Reader, name: string): StateRef {
  return r.field(name, (r) => ({ pool: readPoolRef(r, 'pool'), stateNumber: r.u32('stateNumber') }))
}

/** A block height: u32 below the locktime threshold. */
export function readHeight(r: Reader, name: string): number {
  const h = r.u32(name)
  if (h >= LOCKTIME_THRESHOLD) r.fail(name, `height ${h} is not below the locktime threshold ${LOCKTIME_THRESHOLD}`)
  return h
}

/** An amount in satoshis: u64, at most 21 million BTC. */
export function writeSats(w: Writer, v: bigint, field = 'sats'): void {
  if (typeof v !== 'bigint' || v < 0n || v > MAX_MONEY_SATS) {
    throw new EncodeError(field, `amount ${String(v)} is not within 0..${MAX_MONEY_SATS} sats`)
  }
  w.u64(v, field)
}

export function readSats(r: Reader, name: string): bigint {
  const v = r.u64(name)
  if (v > MAX_MONEY_SATS) r.fail(name, `amount ${v} exceeds 21 million BTC (${MAX_MONEY_SATS} sats)`)
  return v
}

/** Balances aligned with a member list of known length (no count prefix). */
export function writeBalances(w: Writer, balances: readonly bigint[], field = 'balances'): void {
  w.each(balances, (w, b) => writeSats(w, b, ''), field)
}

export function readBalances(r: Reader, name: string, n: number): bigint[] {
  if (n * 8 > r.remaining) r.fail(name, `expected ${n * 8} bytes, got ${r.remaining}`)
  const out = r.repeat(name, n, (r) => readSats(r, ''))
  const total = sumSats(out)
  if (total > MAX_MONEY_SATS) r.fail(name, `total ${total} exceeds 21 million BTC (${MAX_MONEY_SATS} sats)`)
  return out
}

/** A counted list of 32-byte keys in strictly increasing byte order (so sorted and unique). */
export function writeSortedKeys(
  w: Writer,
  keys: readonly Uint8Array[],
  minCount: number,
  maxCount: number,
  field: string
): void {
  if (keys.length < minCount) throw new EncodeError(field, `at least ${minCount} required, got ${keys.length}`)
  w.array(
    keys,
    maxCount,
    (w, key, i) => {
      if (i > 0 && compareBytes(keys[i - 1]!, key) >= 0)
        throw new EncodeError('', 'keys must be sorted in increasing order without duplicates')
      w.bytes32(key, '')
    },
    field
  )
}

export function readSortedKeys(r: Reader, name: string, minCount: number, maxCount: number): Uint8Array[] {
  const n = r.count(name, maxCount, 32)
  if (n < minCount) r.fail(name, `at least ${minCount} required, got ${n}`)
  let prev: Uint8Array | undefined
  return r.repeat(name, n, (r) => {
    const k = r.bytes32('')
    if (prev !== undefined && compareBytes(prev, k) >= 0) {
      r.fail('', equalBytes(prev, k) ? 'duplicate key' : 'keys not in increasing order')
    }
    prev = k
    return k
  })
}

/** Index of `key` in a sorted key list, or -1 (binary search). */
export function indexOfKey(sortedKeys: readonly Uint8Array[], key: Uint8Array): number {
  let lo = 0
  let hi = sortedKeys.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    const c = compareBytes(sortedKeys[mid]!, key)
    if (c === 0) return mid
    if (c < 0) lo = mid + 1
    else hi = mid - 1
  }
  return -1
}
