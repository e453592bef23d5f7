/**
 * Partition statements.
 *
 * Among actives A of a (sub-)pool at state N, a statement spends `{W(N,a) : a in A}` (their
 * `user_balance` outpoints) into an intermediate Update transaction whose single output holds the
 * sum of A's balances, re-distributed among A by `newBalances`; passives are untouched. Every active
 * signs `statementId`, the tagged hash of the unsigned encoding.
 *
 * The partition is itself a (sub-)pool (see `partitionPool`): funding outpoint
 * `(txid(intermediateTx), 0)`, members A, state 0 balances `newBalances`, kick-out delay inherited.
 * It is updated and partitioned again with exactly the same code as the root pool.
 *
 * Encoding (version 1):
 *
 *     version u8 = 1 | poolId 32 | parent: state ref (pool ref | stateNumber u32) | heightT u32
 *     | actives varint n (1..1024) × key 32 (strictly increasing)
 *     | spent n × outpoint (txid 32 | vout u32), spent[i] = (txid(W(N, actives[i])), 0), unique
 *     | newBalances n × u64
 *     | intermediateTx (a Tx, see tx.ts; must equal the one derived from the fields above)
 *     ---- end of the unsigned encoding; statementId = taggedHash('poolboard/partition-statement', it)
 *     | signatures varint m (0..n) × (activeIndex varint (strictly increasing, < n) | signature 64)
 *
 * The intermediate Update is `{version 2, inputs: spent, outputs: [sum(newBalances) →
 * partitionCommitmentKey], locktime 0}` where the key is the tagged hash
 * (`poolboard/partition-commitment`) of the encoding up to and excluding `intermediateTx`.
 * A statement may carry only some signatures while they are being collected; it is complete when
 * every active has signed.
 */
import { equalBytes } from './bytes.js'
import { EncodeError, Writer, decodeAll, type Reader } from './codec.js'
import {
  OK,
  checkObjectSize,
  describeStateRef,
  equalOutpoints,
  equalPoolRefs,
  fail,
  indexOfKey,
  outpointKey,
  readHeight,
  readBalances,
  readOutpoint,
  readSortedKeys,
  readStateRef,
  short,
  sumSats,
  writeBalances,
  writeOutpoint,
  writeSortedKeys,
  writeStateRef,
  type Outpoint,
  type StateRef,
  type Verdict
} from './common.js'
import { TAGS, taggedHash } from './hash.js'
import { signHash, verifyHash, ZERO_AUX, type VerifySignature } from './keys.js'
import { LOCKTIME_THRESHOLD, MAX_MEMBERS, MAX_MONEY_SATS } from './limits.js'
import { memberIndex, stateRefOf, withdrawOutpoints, type Pool, type PoolState } from './state.js'
import { TX_VERSION, encodeTx, readTx, txid, writeTx, type Tx } from './tx.js'

export const STATEMENT_VERSION = 1

/** The signature of the active at `index` (in `actives`). */
export interface StatementSignature {
  index: number
  signature: Uint8Array
}

export interface PartitionStatement {
  poolId: Uint8Array
  /** The state being partitioned: root pool state N, or a partition's sub-state k. */
  parent: StateRef
  /** Height T of the partition's sub-state 0. */
  heightT: number
  /** Sorted keys of the actives. */
  actives: Uint8Array[]
  /** `spent[i]` = `(txid(W(N, actives[i])), 0)`. */
  spent: Outpoint[]
  /** New balances, aligned with `actives`. */
  newBalances: bigint[]
  /** The intermediate Update transaction (derived from the fields above). */
  intermediateTx: Tx
  /** Signatures collected so far, by strictly increasing active index. */
  signatures: StatementSignature[]
}

/** The fields a statement is built from (everything but the derived transaction and signatures). */
export type StatementFields = Omit<PartitionStatement, 'intermediateTx' | 'signatures'>

// ---- encoding ----

function writeHeader(w: Writer, s: StatementFields): void {
  w.u8(STATEMENT_VERSION)
  w.bytes32(s.poolId, 'poolId')
  w.field('parent', (w) => writeStateRef(w, s.parent))
  w.u32(s.heightT, 'heightT')
  writeSortedKeys(w, s.actives, 1, MAX_MEMBERS, 'actives')
  const n = s.actives.length
  if (s.spent.length !== n)
    throw new EncodeError('spent', `expected ${n} outpoints (one per active), got ${s.spent.length}`)
  w.each(s.spent, writeOutpoint, 'spent')
  if (s.newBalances.length !== n)
    throw new EncodeError('newBalances', `expected ${n} balances (one per active), got ${s.newBalances.length}`)
  writeBalances(w, s.newBalances, 'newBalances')
  const total = sumSats(s.newBalances)
  if (total > MAX_MONEY_SATS) throw new EncodeError('newBalances', `total ${total} exceeds 21 million BTC`)
}

function headerBytes(s: StatementFields): Uint8Array {
  const w = new Writer(128 + s.actives.length * 80)
  w.field('partition statement', (w) => writeHeader(w, s))
  return w.finish()
}

/** Output key of the intermediate Update: commits to every field of the statement. */
export function partitionCommitmentKey(s: StatementFields): Uint8Array {
  return taggedHash(TAGS.partitionCommitment, headerBytes(s))
}

/** The intermediate Update transaction a statement with these fields must carry. */
export function deriveIntermediateTx(s: StatementFields): Tx {
  return {
    version: TX_VERSION,
    inputs: s.spent.map((o) => ({ txid: new Uint8Array(o.txid), vout: o.vout })),
    outputs: [{ valueSats: sumSats(s.newBalances), key: partitionCommitmentKey(s) }],
    locktime: 0
  }
}

/** Complete the fields into an unsigned statement (derives the intermediate Update). */
export function makeStatement(fields: StatementFields): PartitionStatement {
  return { ...fields, intermediateTx: deriveIntermediateTx(fields), signatures: [] }
}

function writeUnsigned(w: Writer, s: PartitionStatement): void {
  writeHeader(w, s)
  w.field('intermediateTx', (w) => writeTx(w, s.intermediateTx))
}

function writeSignatures(w: Writer, s: PartitionStatement): void {
  const n = s.actives.length
  w.count(s.signatures.length, n, 'signatures')
  let prev = -1
  w.each(
    s.signatures,
    (w, sig) => {
      if (!Number.isInteger(sig.index) || sig.index <= prev || sig.index >= n) {
        throw new EncodeError('index', `indices must be strictly increasing and below ${n}, got ${sig.index}`)
      }
      prev = sig.index
      w.varint(sig.index, 'index').bytes64(sig.signature, 'signature')
    },
    'signatures'
  )
}

/**
 * Read the unsigned part of a statement and check it: sorted unique actives, unique spent
 * outpoints, and an intermediate transaction equal to the derived one.
 */
export function readUnsignedStatement(r: Reader): PartitionStatement {
  r.version([STATEMENT_VERSION])
  const poolId = r.bytes32('poolId')
  const parent = readStateRef(r, 'parent')
  const heightT = readHeight(r, 'heightT')
  const actives = readSortedKeys(r, 'actives', 1, MAX_MEMBERS)
  const n = actives.length
  if (n * 44 > r.remaining) r.fail('spent', `expected at least ${n * 44} bytes, got ${r.remaining}`)
  const seen = new Set<string>()
  const spent = r.repeat('spent', n, (r) => {
    const o = readOutpoint(r, '')
    const k = outpointKey(o)
    if (seen.has(k)) r.fail('', 'outpoint spent twice')
    seen.add(k)
    return o
  })
  const newBalances = readBalances(r, 'newBalances', n)
  const fields: StatementFields = { poolId, parent, heightT, actives, spent, newBalances }
  const intermediateTx = readTx(r, 'intermediateTx')
  if (!equalBytes(encodeTx(intermediateTx), encodeTx(deriveIntermediateTx(fields)))) {
    r.fail(
      'intermediateTx',
      'does not match the transaction derived from the statement (spent outpoints, sum of new balances, commitment)'
    )
  }
  return { ...fields, intermediateTx, signatures: [] }
}

function readSignatures(r: Reader, n: number): StatementSignature[] {
  let prev = -1
  return r.array(
    'signatures',
    n,
    (r) => {
      const index = r.varint('index')
      if (index <= prev) r.fail('index', `indices must be strictly increasing (got ${index} after ${prev})`)
      if (index >= n) r.fail('index', `active index ${index} out of range (${n} actives)`)
      prev = index
      return { index, signature: r.bytes64('signature') }
    },
    65
  )
}

/** The unsigned encoding (what `statementId` hashes and actives sign). */
export function encodeUnsignedStatement(s: PartitionStatement): Uint8Array {
  const w = new Writer(256 + s.actives.length * 120)
  w.field('partition statement', (w) => writeUnsigned(w, s))
  return w.finish()
}

/** Full encoding: unsigned part followed by the signatures collected so far. */
export function encodeStatement(s: PartitionStatement): Uint8Array {
  const w = new Writer(256 + s.actives.length * 190)
  w.field('partition statement', (w) => {
    writeUnsigned(w, s)
    writeSignatures(w, s)
  })
  return w.finish()
}

/**
 * Decode and check the structure (including the intermediate transaction); throws `DecodeError`
 * naming the field. Signatures are checked by `verifyStatement`.
 */
export function decodeStatement(bytes: Uint8Array): PartitionStatement {
  checkObjectSize(bytes, 'partition statement')
  return decodeAll(bytes, 'partition statement', (r) => {
    const s = readUnsignedStatement(r)
    s.signatures = readSignatures(r, s.actives.length)
    return s
  })
}

/** Tagged hash (`poolboard/partition-statement`) of the unsigned encoding: what actives sign. */
export function statementId(s: PartitionStatement): Uint8Array {
  return taggedHash(TAGS.partitionStatement, encodeUnsignedStatement(s))
}

// ---- signatures ----

/** An active's signature over the statement. */
export function signStatement(
  s: PartitionStatement,
  secretKey: Uint8Array,
  auxRand: Uint8Array = ZERO_AUX
): Uint8Array {
  return signHash(statementId(s), secretKey, auxRand)
}

/**
 * A copy of `s` with `signature` recorded for active `key` (replacing any earlier one for that key).
 * Throws `RangeError` if `key` is not an active. Does not verify the signature.
 */
export function withStatementSignature(
  s: PartitionStatement,
  key: Uint8Array,
  signature: Uint8Array
): PartitionStatement {
  const index = indexOfKey(s.actives, key)
  if (index < 0) throw new RangeError(`key ${short(key)} is not an active of this statement`)
  const signatures = s.signatures.filter((x) => x.index !== index)
  signatures.push({ index, signature: new Uint8Array(signature) })
  signatures.sort((a, b) => a.index - b.index)
  return { ...s, signatures }
}

/**
 * A copy of `s` carrying the given signatures (by active key), replacing any it carried for those
 * actives. O(n log n) for n actives, where adding them one by one with `withStatementSignature`
 * costs O(n²): a round of 1,000 signers builds its statement this way. Throws `RangeError` if a key
 * is not an active. Does not verify the signatures.
 */
export function withStatementSignatures(
  s: PartitionStatement,
  signatures: Iterable<{ key: Uint8Array; signature: Uint8Array }>
): PartitionStatement {
  const byIndex = new Map(s.signatures.map((x) => [x.index, x.signature]))
  for (const { key, signature } of signatures) {
    const index = indexOfKey(s.actives, key)
    if (index < 0) throw new RangeError(`key ${short(key)} is not an active of this statement`)
    byIndex.set(index, new Uint8Array(signature))
  }
  return {
    ...s,
    signatures: [...byIndex].sort((a, b) => a[0] - b[0]).map(([index, signature]) => ({ index, signature }))
  }
}

/** The signature carried for active `key`, if any. */
export function statementSignatureOf(s: PartitionStatement, key: Uint8Array): Uint8Array | undefined {
  const index = indexOfKey(s.actives, key)
  if (index < 0) return undefined
  return s.signatures.find((x) => x.index === index)?.signature
}

/** True if every active has a signature in the statement (not checked for validity). */
export function isStatementComplete(s: PartitionStatement): boolean {
  return s.signatures.length === s.actives.length
}

// ---- sub-pools ----

/**
 * The (sub-)pool a statement creates, given the pool it partitions. Throws `RangeError` if the
 * statement does not refer to `parent`.
 */
export function partitionPool(parent: Pool, s: PartitionStatement): Pool {
  if (!equalBytes(parent.poolId, s.poolId)) throw new RangeError('statement belongs to another pool')
  if (!equalPoolRefs(parent.ref, s.parent.pool))
    throw new RangeError(`statement partitions ${describeStateRef(s.parent)}, not this pool`)
  return {
    poolId: s.poolId,
    ref: { kind: 'partition', statementId: statementId(s) },
    members: s.actives.map((k) => new Uint8Array(k)),
    funding: { txid: txid(s.intermediateTx), vout: 0 },
    totalSats: sumSats(s.newBalances),
    kickoutDelayBlocks: parent.kickoutDelayBlocks
  }
}

/** Sub-state 0 of the partition a statement creates. */
export function partitionInitialState(parent: Pool, s: PartitionStatement): PoolState {
  return { pool: partitionPool(parent, s), stateNumber: 0, heightT: s.heightT, balances: [...s.newBalances] }
}

// ---- conflicts ----

/**
 * Outpoints spent by both statements, if they are different statements (different statement ids);
 * empty if they do not conflict.
 */
export function conflictingOutpoints(a: PartitionStatement, b: PartitionStatement): Outpoint[] {
  const inA = new Map<string, Outpoint>()
  for (const o of a.spent) inA.set(outpointKey(o), o)
  const common: Outpoint[] = []
  for (const o of b.spent) {
    const x = inA.get(outpointKey(o))
    if (x !== undefined) common.push({ txid: new Uint8Array(x.txid), vout: x.vout })
  }
  if (common.length === 0) return common
  if (equalBytes(statementId(a), statementId(b))) return []
  return common
}

/** True if the two statements are different and spend a common outpoint. */
export function statementsConflict(a: PartitionStatement, b: PartitionStatement): boolean {
  return conflictingOutpoints(a, b).length > 0
}

// ---- verification ----

export interface VerifyStatementOptions {
  /**
   * The parent state, if known: then the statement is also checked against it (same pool and state,
   * actives are members, spent outpoints are their W(N,a), sum of balances conserved, height not
   * before the parent's).
   */
  parent?: PoolState
  /**
   * `withdrawOutpoints(parent)`, when the caller already has them: computing them hashes one
   * transaction per member of the parent pool, which dominates checking a statement of a large pool.
   */
  parentOutpoints?: readonly Outpoint[]
  /** Require a valid signature from every active (default true). Otherwise only carried ones are checked. */
  requireComplete?: boolean
  /**
   * The statement was just returned by `decodeStatement` (which accepts only well-formed ones):
   * skip re-checking its structure by an encode-decode round trip, a quarter of the cost of
   * applying a statement. Its `statementId`, when the caller has it, saves hashing it again.
   */
  decoded?: { statementId: Uint8Array }
  /** How a signature is checked (default `verifyHash`; a node passes its signature cache's verifier). */
  verify?: VerifySignature
}

/**
 * Verify a statement: structure (by re-encoding and decoding it), optionally its derivation from
 * the parent state, and every carried signature under its active's key. Returns the reason when
 * invalid; never throws.
 */
export function verifyStatement(s: PartitionStatement, opts: VerifyStatementOptions = {}): Verdict {
  let decoded: PartitionStatement = s
  if (opts.decoded === undefined) {
    try {
      decoded = decodeStatement(encodeStatement(s))
    } catch (e) {
      return fail(`malformed statement: ${(e as Error).message}`)
    }
  }
  if (opts.parent !== undefined) {
    const v = checkAgainstParent(decoded, opts.parent, opts.parentOutpoints)
    if (!v.ok) return v
  }
  const requireComplete = opts.requireComplete ?? true
  if (requireComplete && !isStatementComplete(decoded)) {
    const missing = decoded.actives.map((_, i) => i).filter((i) => !decoded.signatures.some((x) => x.index === i))
    return fail(
      `incomplete: missing the signatures of actives ${missing.map((i) => `${i} (${short(decoded.actives[i]!)})`).join(', ')}`
    )
  }
  const verify = opts.verify ?? verifyHash
  const id = opts.decoded?.statementId ?? statementId(decoded)
  for (const { index, signature } of decoded.signatures) {
    const key = decoded.actives[index]!
    if (!verify(signature, id, key)) return fail(`the signature of active ${index} (${short(key)}) does not verify`)
  }
  return OK
}

function checkAgainstParent(s: PartitionStatement, parent: PoolState, knownOutpoints?: readonly Outpoint[]): Verdict {
  const pool = parent.pool
  if (!equalBytes(s.poolId, pool.poolId))
    return fail(`poolId ${short(s.poolId)} is not the parent's pool ${short(pool.poolId)}`)
  const ref = stateRefOf(parent)
  if (!equalPoolRefs(s.parent.pool, ref.pool) || s.parent.stateNumber !== ref.stateNumber) {
    return fail(`statement partitions ${describeStateRef(s.parent)}, but the parent given is ${describeStateRef(ref)}`)
  }
  const outpoints = knownOutpoints ?? withdrawOutpoints(parent)
  let parentSum = 0n
  for (let i = 0; i < s.actives.length; i++) {
    const key = s.actives[i]!
    const m = memberIndex(pool, key)
    if (m < 0) return fail(`active ${i} (${short(key)}) is not a member of ${describeStateRef(ref)}`)
    if (!equalOutpoints(s.spent[i]!, outpoints[m]!))
      return fail(`spent[${i}] is not the user_balance outpoint of W(${parent.stateNumber}, ${short(key)})`)
    parentSum += parent.balances[m]!
  }
  const newSum = sumSats(s.newBalances)
  if (newSum !== parentSum)
    return fail(
      `sum of new balances ${newSum} differs from the actives' balances ${parentSum} at ${describeStateRef(ref)}`
    )
  if (s.heightT < parent.heightT)
    return fail(`heightT ${s.heightT} is before the parent state's height ${parent.heightT}`)
  if (s.heightT + pool.kickoutDelayBlocks >= LOCKTIME_THRESHOLD)
    return fail(`heightT ${s.heightT} + kick-out delay reaches the locktime threshold`)
  return OK
}
