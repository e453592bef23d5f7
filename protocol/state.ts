/**
 * Pools, states, and the transactions that fix a state.
 *
 * One description covers the root pool and every partition (sub-pool): a `Pool` has a funding
 * outpoint, members, a total, and a kick-out delay. For the root pool these come from the genesis;
 * for a partition, from its partition statement (the funding outpoint is output 0 of the statement's
 * intermediate Update transaction). A `PoolState` is state N of such a pool: the members' balances
 * and the height T at which its Update was made.
 *
 * Transactions of state N (all derived, never chosen freely):
 *
 *     Update(N)   inputs [pool.funding]
 *                 outputs [ total → stateCommitmentKey(state) ]          locktime 0
 *     W(N,u)      inputs [(txid(Update(N)), 0)]
 *                 outputs [ balance_u → key_u            (user_balance, vout 0)
 *                           total - balance_u → remainderKey(state, u)   (only if > 0) ]
 *                 locktime 0
 *     K(N,u)      identical to W(N,u) but locktime T + X (the kick-out Withdraw)
 *
 * `stateHash` covers the state and the txids of Update(N), every W(N,u) and every K(N,u): one
 * signature per member over it stands in for that member's signatures on all those transactions.
 * The state is final when every member has signed it (`SignedState`).
 *
 * Encoding of a state (version 1):
 *
 *     version u8 = 1
 *     poolId 32 | pool ref (u8 kind [+ statementId 32]) | members varint n (1..1024) × key 32 (sorted)
 *     funding (txid 32 | vout u32) | totalSats u64 | kickoutDelayBlocks u32
 *     stateNumber u32 | heightT u32 | balances n × u64 (sum = totalSats)
 *
 * A signed state appends n × signature 64, aligned with members.
 */
import { EncodeError, Writer, decodeAll, type Reader } from './codec.js'
import {
  OK,
  checkObjectSize,
  equalOutpoints,
  equalPoolRefs,
  fail,
  indexOfKey,
  readBalances,
  readHeight,
  readOutpoint,
  readPoolRef,
  readSats,
  readSortedKeys,
  short,
  sumSats,
  writeBalances,
  writeOutpoint,
  writePoolRef,
  writeSats,
  writeSortedKeys,
  type Outpoint,
  type PoolRef,
  type StateRef,
  type Verdict
} from './common.js'
import { equalBytes } from './bytes.js'
import { TAGS, taggedHash } from './hash.js'
import { signHash, verifyHash, ZERO_AUX } from './keys.js'
import {
  LOCKTIME_THRESHOLD,
  MAX_KICKOUT_DELAY_BLOCKS,
  MAX_MEMBERS,
  MAX_STATE_NUMBER,
  MIN_KICKOUT_DELAY_BLOCKS
} from './limits.js'
import { TX_VERSION, txid, type Tx } from './tx.js'

export const STATE_VERSION = 1
export const SIGNED_STATE_VERSION = 1

/** A root pool or a partition (sub-pool). */
export interface Pool {
  /** Id of the root pool (tagged hash of its genesis); shared by all its partitions. */
  poolId: Uint8Array
  /** Which (sub-)pool this is. */
  ref: PoolRef
  /** Member keys, sorted and unique. For a partition: its actives. */
  members: Uint8Array[]
  /** Outpoint every Update of this pool spends. */
  funding: Outpoint
  /** Value of the funding outpoint = sum of the balances of every state. */
  totalSats: bigint
  /** Kick-out delay X in blocks (partitions inherit the root pool's). */
  kickoutDelayBlocks: number
}

/** State N of a pool. `balances` is aligned with `pool.members`. */
export interface PoolState {
  pool: Pool
  stateNumber: number
  /** Height T at which this state's Update was made; kick-outs are locked until T + X. */
  heightT: number
  balances: bigint[]
}

/** All transactions of a state (`withdraws[i]` and `kickouts[i]` are for `pool.members[i]`). */
export interface StateTransactions {
  update: Tx
  withdraws: Tx[]
  kickouts: Tx[]
}

/** A final state: the state plus every member's signature over its state hash (aligned with members). */
export interface SignedState {
  state: PoolState
  signatures: Uint8Array[]
}

/** The reference of a state. */
export function stateRefOf(state: PoolState): StateRef {
  return { pool: state.pool.ref, stateNumber: state.stateNumber }
}

/** True if both describe the same (sub-)pool. */
export function equalPools(a: Pool, b: Pool): boolean {
  return (
    equalBytes(a.poolId, b.poolId) &&
    equalPoolRefs(a.ref, b.ref) &&
    a.members.length === b.members.length &&
    a.members.every((k, i) => equalBytes(k, b.members[i]!)) &&
    equalOutpoints(a.funding, b.funding) &&
    a.totalSats === b.totalSats &&
    a.kickoutDelayBlocks === b.kickoutDelayBlocks
  )
}

/** Index of `key` among the pool's members, or -1. */
export function memberIndex(pool: Pool, key: Uint8Array): number {
  return indexOfKey(pool.members, key)
}

// ---- encoding ----

export function writePool(w: Writer, pool: Pool): void {
  w.bytes32(pool.poolId, 'poolId')
  w.field('ref', (w) => writePoolRef(w, pool.ref))
  writeSortedKeys(w, pool.members, 1, MAX_MEMBERS, 'members')
  w.field('funding', (w) => writeOutpoint(w, pool.funding))
  writeSats(w, pool.totalSats, 'totalSats')
  const x = pool.kickoutDelayBlocks
  if (!Number.isInteger(x) || x < MIN_KICKOUT_DELAY_BLOCKS || x > MAX_KICKOUT_DELAY_BLOCKS) {
    throw new EncodeError(
      'kickoutDelayBlocks',
      `${x} is not within ${MIN_KICKOUT_DELAY_BLOCKS}..${MAX_KICKOUT_DELAY_BLOCKS}`
    )
  }
  w.u32(x, 'kickoutDelayBlocks')
}

export function readPool(r: Reader): Pool {
  const poolId = r.bytes32('poolId')
  const ref = readPoolRef(r, 'ref')
  const members = readSortedKeys(r, 'members', 1, MAX_MEMBERS)
  const funding = readOutpoint(r, 'funding')
  const totalSats = readSats(r, 'totalSats')
  const kickoutDelayBlocks = r.u32('kickoutDelayBlocks')
  if (kickoutDelayBlocks < MIN_KICKOUT_DELAY_BLOCKS || kickoutDelayBlocks > MAX_KICKOUT_DELAY_BLOCKS) {
    r.fail(
      'kickoutDelayBlocks',
      `${kickoutDelayBlocks} is not within ${MIN_KICKOUT_DELAY_BLOCKS}..${MAX_KICKOUT_DELAY_BLOCKS}`
    )
  }
  return { poolId, ref, members, funding, totalSats, kickoutDelayBlocks }
}

/** What kind of structural problem a state has (the rules' `RuleError` code for it). */
export type StateProblemCode = 'balance-count' | 'negative-balance' | 'sum-not-conserved' | 'invalid-state'

/** A structural problem of a state: its kind, the field, and why. */
export interface StateProblem {
  code: StateProblemCode
  field: string
  reason: string
}

/** Structural problem of a state (the same checks as the decoder), or null. */
export function stateProblem(s: PoolState): StateProblem | null {
  const n = s.pool.members.length
  if (s.balances.length !== n)
    return {
      code: 'balance-count',
      field: 'balances',
      reason: `expected ${n} balances (one per member), got ${s.balances.length}`
    }
  for (let i = 0; i < n; i++) {
    if (typeof s.balances[i] !== 'bigint' || s.balances[i]! < 0n) {
      return {
        code: 'negative-balance',
        field: `balances[${i}]`,
        reason: `negative or non-integer balance ${String(s.balances[i])}`
      }
    }
  }
  const sum = sumSats(s.balances)
  if (sum !== s.pool.totalSats)
    return {
      code: 'sum-not-conserved',
      field: 'balances',
      reason: `sum ${sum} differs from the pool total ${s.pool.totalSats}`
    }
  if (!Number.isInteger(s.stateNumber) || s.stateNumber < 0 || s.stateNumber > MAX_STATE_NUMBER) {
    return { code: 'invalid-state', field: 'stateNumber', reason: `not a u32: ${s.stateNumber}` }
  }
  if (!Number.isInteger(s.heightT) || s.heightT < 0 || s.heightT + s.pool.kickoutDelayBlocks >= LOCKTIME_THRESHOLD) {
    return {
      code: 'invalid-state',
      field: 'heightT',
      reason: `heightT + kickoutDelayBlocks must be a height below ${LOCKTIME_THRESHOLD}, got ${s.heightT} + ${s.pool.kickoutDelayBlocks}`
    }
  }
  return null
}

export function writeState(w: Writer, s: PoolState): void {
  const p = stateProblem(s)
  if (p) throw new EncodeError(p.field, p.reason)
  w.u8(STATE_VERSION)
  writePool(w, s.pool)
  w.u32(s.stateNumber, 'stateNumber')
  w.u32(s.heightT, 'heightT')
  writeBalances(w, s.balances)
}

export function readState(r: Reader): PoolState {
  r.version([STATE_VERSION])
  const pool = readPool(r)
  const stateNumber = r.u32('stateNumber')
  const heightT = readHeight(r, 'heightT')
  if (heightT + pool.kickoutDelayBlocks >= LOCKTIME_THRESHOLD) {
    r.fail('heightT', `heightT + kickoutDelayBlocks must be below ${LOCKTIME_THRESHOLD}`)
  }
  const balances = readBalances(r, 'balances', pool.members.length)
  const sum = sumSats(balances)
  if (sum !== pool.totalSats) r.fail('balances', `sum ${sum} differs from the pool total ${pool.totalSats}`)
  return { pool, stateNumber, heightT, balances }
}

/** Canonical encoding of a state (throws `EncodeError` if it is structurally invalid). */
export function encodeState(s: PoolState): Uint8Array {
  const w = new Writer(128 + s.balances.length * 40)
  w.field('state', (w) => writeState(w, s))
  return w.finish()
}

/** Decode a state; throws `DecodeError` naming the field. */
export function decodeState(bytes: Uint8Array): PoolState {
  checkObjectSize(bytes, 'state')
  return decodeAll(bytes, 'state', readState)
}

export function encodeSignedState(ss: SignedState): Uint8Array {
  const n = ss.state.pool.members.length
  if (ss.signatures.length !== n)
    throw new EncodeError('signed state.signatures', `expected ${n} signatures, got ${ss.signatures.length}`)
  const w = new Writer(128 + n * 104)
  w.field('signed state', (w) => {
    w.u8(SIGNED_STATE_VERSION)
    w.field('state', (w) => writeState(w, ss.state))
    w.each(ss.signatures, (w, sig) => w.bytes64(sig, ''), 'signatures')
  })
  return w.finish()
}

/** Decode a signed state (structure only: use `verifySignedState` for the signatures). */
export function decodeSignedState(bytes: Uint8Array): SignedState {
  checkObjectSize(bytes, 'signed state')
  return decodeAll(bytes, 'signed state', (r) => {
    r.version([SIGNED_STATE_VERSION])
    const state = r.field('state', readState)
    const n = state.pool.members.length
    if (n * 64 > r.remaining) r.fail('signatures', `expected ${n * 64} bytes, got ${r.remaining}`)
    const signatures = r.repeat('signatures', n, (r) => r.bytes64(''))
    return { state, signatures }
  })
}

// ---- transactions ----

/** Output key of Update(N): a commitment to the whole state (pool, N, T, balances). */
export function stateCommitmentKey(s: PoolState): Uint8Array {
  return taggedHash(TAGS.stateCommitment, encodeState(s))
}

function u32le(n: number): Uint8Array {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, n, true)
  return b
}

/** Output key of the remainder output of W(N,u) / K(N,u) for member index `i`. */
export function remainderKey(stateCommitment: Uint8Array, i: number): Uint8Array {
  return taggedHash(TAGS.withdrawRemainder, stateCommitment, u32le(i))
}

function buildWithdraw(s: PoolState, updateTxid: Uint8Array, commitment: Uint8Array, i: number, locktime: number): Tx {
  const b = s.balances[i]!
  const rest = s.pool.totalSats - b
  const outputs = [{ valueSats: b, key: s.pool.members[i]! }]
  if (rest > 0n) outputs.push({ valueSats: rest, key: remainderKey(commitment, i) })
  return { version: TX_VERSION, inputs: [{ txid: updateTxid, vout: 0 }], outputs, locktime }
}

/** Update(N) of a state. */
export function updateTx(s: PoolState): Tx {
  return {
    version: TX_VERSION,
    inputs: [{ txid: s.pool.funding.txid, vout: s.pool.funding.vout }],
    outputs: [{ valueSats: s.pool.totalSats, key: stateCommitmentKey(s) }],
    locktime: 0
  }
}

/** Locktime of the kick-out Withdraws of a state: T + X. */
export function kickoutLocktime(s: PoolState): number {
  return s.heightT + s.pool.kickoutDelayBlocks
}

/** Every transaction of a state. */
export function stateTransactions(s: PoolState): StateTransactions {
  const update = updateTx(s)
  const id = txid(update)
  const commitment = update.outputs[0]!.key
  const lock = kickoutLocktime(s)
  const withdraws: Tx[] = []
  const kickouts: Tx[] = []
  for (let i = 0; i < s.pool.members.length; i++) {
    withdraws.push(buildWithdraw(s, id, commitment, i, 0))
    kickouts.push(buildWithdraw(s, id, commitment, i, lock))
  }
  return { update, withdraws, kickouts }
}

/** W(N,u) for the member at index `i`. */
export function withdrawTx(s: PoolState, i: number): Tx {
  checkIndex(s, i)
  const update = updateTx(s)
  return buildWithdraw(s, txid(update), update.outputs[0]!.key, i, 0)
}

/** K(N,u) for the member at index `i`. */
export function kickoutTx(s: PoolState, i: number): Tx {
  checkIndex(s, i)
  const update = updateTx(s)
  return buildWithdraw(s, txid(update), update.outputs[0]!.key, i, kickoutLocktime(s))
}

/** The `user_balance` outpoint of W(N,u): what a partition statement spends. */
export function withdrawOutpoint(s: PoolState, i: number): Outpoint {
  return { txid: txid(withdrawTx(s, i)), vout: 0 }
}

/** `withdrawOutpoint` for every member, computing Update(N) once. */
export function withdrawOutpoints(s: PoolState): Outpoint[] {
  const update = updateTx(s)
  const id = txid(update)
  const commitment = update.outputs[0]!.key
  return s.pool.members.map((_, i) => ({ txid: txid(buildWithdraw(s, id, commitment, i, 0)), vout: 0 }))
}

function checkIndex(s: PoolState, i: number): void {
  if (!Number.isInteger(i) || i < 0 || i >= s.pool.members.length)
    throw new RangeError(`member index ${i} out of range`)
}

// ---- state hash and signatures ----

/**
 * The state hash (`poolboard/state`): commits to the state's encoding and to the txids of
 * Update(N), every W(N,u) and every K(N,u), in member order. Members sign it to make the state final.
 */
export function stateHash(s: PoolState): Uint8Array {
  const txs = stateTransactions(s)
  return hashOfState(s, txs, txs.withdraws.map(txid))
}

/**
 * `stateHash(s)` and `withdrawOutpoints(s)` together, building the state's transactions once (what
 * checking a new state and then indexing its Withdraw outpoints needs).
 */
export function stateHashAndOutpoints(s: PoolState): { hash: Uint8Array; outpoints: Outpoint[] } {
  const txs = stateTransactions(s)
  const withdrawIds = txs.withdraws.map(txid)
  return { hash: hashOfState(s, txs, withdrawIds), outpoints: withdrawIds.map((id) => ({ txid: id, vout: 0 })) }
}

function hashOfState(s: PoolState, txs: StateTransactions, withdrawIds: readonly Uint8Array[]): Uint8Array {
  const parts: Uint8Array[] = [encodeState(s), txid(txs.update), ...withdrawIds]
  for (const t of txs.kickouts) parts.push(txid(t))
  return taggedHash(TAGS.state, ...parts)
}

/** A member's signature over a state (its share of the unanimous signature set). */
export function signState(s: PoolState, secretKey: Uint8Array, auxRand: Uint8Array = ZERO_AUX): Uint8Array {
  return signHash(stateHash(s), secretKey, auxRand)
}

/** Check that a signed state carries a valid signature from every member. Never throws. */
export function verifySignedState(ss: SignedState): Verdict {
  const p = stateProblem(ss.state)
  if (p) return fail(`state: ${p.field}: ${p.reason}`)
  const n = ss.state.pool.members.length
  if (ss.signatures.length !== n) return fail(`expected ${n} signatures (one per member), got ${ss.signatures.length}`)
  let h: Uint8Array
  try {
    h = stateHash(ss.state)
  } catch (e) {
    return fail(`malformed state: ${(e as Error).message}`)
  }
  for (let i = 0; i < n; i++) {
    const key = ss.state.pool.members[i]!
    if (!verifyHash(ss.signatures[i]!, h, key)) return fail(`signature of member ${i} (${short(key)}) does not verify`)
  }
  return OK
}
