/**
 * The pure pool rules: deriving states, payments, what a member may sign, partitions, kick-outs.
 *
 * Every function is pure (no clock: times and heights are parameters). Rule violations throw a
 * `RuleError` whose `code` is stable and whose message names what was wrong. Invariants that the
 * code itself guarantees (sum conserved by a payment, ...) are asserted and stop the process if
 * broken.
 */
import assert from 'node:assert/strict'
import { compareBytes, equalBytes } from './bytes.js'
import {
  describePoolRef,
  describeStateRef,
  equalPoolRefs,
  indexOfKey,
  short,
  sumSats,
  type StateRef
} from './common.js'
import type { Genesis } from './genesis.js'
import { poolIdOf } from './genesis.js'
import {
  verifyMergeRequestSignature,
  verifyPartitionRequestSignature,
  verifyUpdateRequestSignature,
  type MergeRequest,
  type PartitionRequest,
  type UnsignedMergeRequest,
  type Payment,
  type UnsignedPartitionRequest,
  type UnsignedUpdateRequest,
  type UpdateRequest
} from './requests.js'
import { LOCKTIME_THRESHOLD, MAX_STATE_NUMBER } from './limits.js'
import {
  equalPools,
  kickoutLocktime,
  kickoutTx,
  memberIndex,
  stateHash,
  stateProblem,
  stateRefOf,
  withdrawOutpoints,
  type Pool,
  type PoolState,
  type StateProblemCode
} from './state.js'
import { makeStatement, verifyStatement, type PartitionStatement } from './statement.js'
import type { Tx } from './tx.js'

export type RuleErrorCode =
  /** A structurally invalid state (see `stateProblem`). */
  | StateProblemCode
  | 'wrong-pool'
  | 'state-number'
  | 'bad-payment'
  | 'insufficient-balance'
  | 'not-a-member'
  | 'balance-decreased'
  | 'overpayment'
  | 'height'
  | 'stale-state'
  | 'bad-signature'
  | 'balances-mismatch'
  | 'deadline-passed'
  | 'no-actives'
  | 'duplicate-active'
  | 'merge-mismatch'

/** A refused transition: `code` is for programs, the message for people. */
export class RuleError extends Error {
  readonly code: RuleErrorCode
  constructor(code: RuleErrorCode, message: string) {
    super(message)
    this.name = 'RuleError'
    this.code = code
  }
}

function refuse(code: RuleErrorCode, message: string): never {
  throw new RuleError(code, message)
}

// ---- pools and states ----

/** The root pool described by a genesis. */
export function poolFromGenesis(g: Genesis): Pool {
  return {
    poolId: poolIdOf(g),
    ref: { kind: 'root' },
    members: g.members.map((m) => new Uint8Array(m.key)),
    funding: { txid: new Uint8Array(g.funding.txid), vout: g.funding.vout },
    totalSats: sumSats(g.balances),
    kickoutDelayBlocks: g.kickoutDelayBlocks
  }
}

/** State 0 of the root pool: the genesis balances, T = creation height. */
export function initialState(g: Genesis): PoolState {
  const s: PoolState = {
    pool: poolFromGenesis(g),
    stateNumber: 0,
    heightT: g.creationHeight,
    balances: [...g.balances]
  }
  assertValidState(s)
  return s
}

function assertValidState(s: PoolState): void {
  const p = stateProblem(s)
  assert(p === null, `invalid state: ${p?.field}: ${p?.reason}`)
}

/** Throws `RuleError` (with the code `stateProblem` gives) if `s` is not a structurally valid state. */
export function checkState(s: PoolState): void {
  const p = stateProblem(s)
  if (p !== null) refuse(p.code, `state ${s.stateNumber}: ${p.field}: ${p.reason}`)
}

function memberOrRefuse(pool: Pool, key: Uint8Array, role: string): number {
  const i = memberIndex(pool, key)
  if (i < 0) refuse('not-a-member', `${role} ${short(key)} is not a member of the ${describePoolRef(pool.ref)}`)
  return i
}

// ---- payments and updates ----

/** Throws unless `payment` is well-formed for `state`: distinct members, positive amount the payer can afford. */
export function checkPayment(state: PoolState, payment: Payment): void {
  if (typeof payment.amountSats !== 'bigint' || payment.amountSats <= 0n) {
    refuse('bad-payment', `payment amount must be a positive number of sats, got ${String(payment.amountSats)}`)
  }
  if (equalBytes(payment.payer, payment.payee)) refuse('bad-payment', 'payer and payee are the same member')
  const payer = memberOrRefuse(state.pool, payment.payer, 'payer')
  memberOrRefuse(state.pool, payment.payee, 'payee')
  const have = state.balances[payer]!
  if (have < payment.amountSats) {
    refuse('insufficient-balance', `payer ${short(payment.payer)} has ${have} sats, cannot pay ${payment.amountSats}`)
  }
}

/** State N+1 after `payment`, with Update height `heightT`. The sum is conserved (asserted). */
export function applyPayment(state: PoolState, payment: Payment, heightT: number): PoolState {
  checkState(state)
  checkPayment(state, payment)
  if (state.stateNumber >= MAX_STATE_NUMBER)
    refuse('state-number', `state number ${state.stateNumber} cannot be incremented`)
  checkHeight(state, heightT)
  const balances = [...state.balances]
  const payer = memberIndex(state.pool, payment.payer)
  const payee = memberIndex(state.pool, payment.payee)
  balances[payer] = balances[payer]! - payment.amountSats
  balances[payee] = balances[payee]! + payment.amountSats
  assert(sumSats(balances) === sumSats(state.balances), 'payment must conserve the sum of balances')
  assert(
    balances.every((b) => b >= 0n),
    'payment must leave no balance negative'
  )
  const next: PoolState = { pool: state.pool, stateNumber: state.stateNumber + 1, heightT, balances }
  assertValidState(next)
  return next
}

function checkHeight(current: PoolState, heightT: number): void {
  if (!Number.isInteger(heightT) || heightT < current.heightT) {
    refuse('height', `heightT ${heightT} is before the current state's height ${current.heightT}`)
  }
  if (heightT + current.pool.kickoutDelayBlocks >= LOCKTIME_THRESHOLD) {
    refuse(
      'height',
      `heightT ${heightT} + kick-out delay ${current.pool.kickoutDelayBlocks} reaches the locktime threshold ${LOCKTIME_THRESHOLD}`
    )
  }
}

/**
 * May member `myMember` sign `proposed` as the successor of `current`, given the payment it is
 * said to implement? Throws `RuleError` naming the problem; returns normally if acceptable.
 *
 * Accepted only if: same (sub-)pool; state number N+1; one balance per member, none negative; sum
 * conserved; the payment is well-formed for `current`; `myMember` is a member; `myMember`'s balance
 * is unchanged or higher, unless `myMember` is the payer, whose balance may drop by at most the
 * payment amount; the new height is not before the current one.
 */
export function checkUpdateAcceptable(
  current: PoolState,
  proposed: PoolState,
  myMember: Uint8Array,
  payment: Payment
): void {
  checkState(current)
  if (!equalPools(current.pool, proposed.pool)) {
    refuse(
      'wrong-pool',
      `proposed state is for another pool than ${describeStateRef(stateRefOf(current))} (pool id, reference, members, funding, total or kick-out delay differ)`
    )
  }
  if (proposed.stateNumber !== current.stateNumber + 1) {
    refuse('state-number', `state number: expected ${current.stateNumber + 1}, got ${proposed.stateNumber}`)
  }
  const n = current.pool.members.length
  if (proposed.balances.length !== n)
    refuse('balance-count', `expected ${n} balances (one per member), got ${proposed.balances.length}`)
  proposed.balances.forEach((b, i) => {
    if (typeof b !== 'bigint' || b < 0n)
      refuse(
        'negative-balance',
        `balance of member ${i} (${short(current.pool.members[i]!)}) is negative: ${String(b)}`
      )
  })
  const before = sumSats(current.balances)
  const after = sumSats(proposed.balances)
  if (after !== before) refuse('sum-not-conserved', `sum of balances: expected ${before}, got ${after}`)
  checkPayment(current, payment)
  const me = memberOrRefuse(current.pool, myMember, 'member')
  const old = current.balances[me]!
  const now = proposed.balances[me]!
  if (equalBytes(myMember, payment.payer)) {
    if (old - now > payment.amountSats) {
      refuse(
        'overpayment',
        `my balance would drop by ${old - now} sats, more than the payment amount ${payment.amountSats}`
      )
    }
  } else if (now < old) {
    refuse('balance-decreased', `my balance would drop from ${old} to ${now} sats and I am not the payer`)
  }
  checkHeight(current, proposed.heightT)
  checkState(proposed)
}

/** An unsigned update request from `current`, applying `payment` (sign it with `signUpdateRequest`). */
export function makeUpdateRequest(
  current: PoolState,
  params: { proposer: Uint8Array; payment: Payment; heightT: number; deadlineMs: number; roundId: Uint8Array }
): UnsignedUpdateRequest {
  memberOrRefuse(current.pool, params.proposer, 'proposer')
  const next = applyPayment(current, params.payment, params.heightT)
  return {
    poolId: current.pool.poolId,
    from: stateRefOf(current),
    fromStateHash: stateHash(current),
    proposer: new Uint8Array(params.proposer),
    heightT: params.heightT,
    newBalances: next.balances,
    payment: params.payment,
    deadlineMs: params.deadlineMs,
    roundId: new Uint8Array(params.roundId)
  }
}

/**
 * Check a received update request against our current state and return the proposed state N+1:
 * same pool and starting state (by hash), proposer a member with a valid signature, deadline not
 * passed (if `nowMs` is given), and new balances exactly those of the payment applied to `current`.
 * Each member then still applies `checkUpdateAcceptable` before signing.
 */
export function checkUpdateRequest(current: PoolState, req: UpdateRequest, opts: { nowMs?: number } = {}): PoolState {
  checkRequestedState(current, req.poolId, req.from, req.fromStateHash, { pool: 'updates', state: 'starts from' })
  memberOrRefuse(current.pool, req.proposer, 'proposer')
  if (!verifyUpdateRequestSignature(req))
    refuse('bad-signature', `proposer ${short(req.proposer)}'s signature on the update request does not verify`)
  if (opts.nowMs !== undefined && opts.nowMs > req.deadlineMs)
    refuse('deadline-passed', `deadline ${req.deadlineMs} passed (now ${opts.nowMs})`)
  const n = current.pool.members.length
  if (req.newBalances.length !== n)
    refuse('balance-count', `expected ${n} balances (one per member), got ${req.newBalances.length}`)
  const expected = applyPayment(current, req.payment, req.heightT)
  for (let i = 0; i < n; i++) {
    if (req.newBalances[i] !== expected.balances[i]) {
      refuse(
        'balances-mismatch',
        `balance of member ${i} (${short(current.pool.members[i]!)}): the payment gives ${expected.balances[i]}, the request says ${req.newBalances[i]}`
      )
    }
  }
  return expected
}

/**
 * Refuses a request unless it names `current`: its pool, its (sub-)pool reference, its state number
 * and its state hash. `verbs` word the messages ("request updates …", "request starts from state …").
 */
function checkRequestedState(
  current: PoolState,
  poolId: Uint8Array,
  from: StateRef,
  fromStateHash: Uint8Array,
  verbs: { pool: string; state: string }
): void {
  checkState(current)
  if (!equalBytes(poolId, current.pool.poolId))
    refuse('wrong-pool', `request is for pool ${short(poolId)}, not ${short(current.pool.poolId)}`)
  const ref = stateRefOf(current)
  if (!equalPoolRefs(from.pool, ref.pool))
    refuse('wrong-pool', `request ${verbs.pool} ${describeStateRef(from)}, not ${describeStateRef(ref)}`)
  if (from.stateNumber !== ref.stateNumber)
    refuse('stale-state', `request ${verbs.state} state ${from.stateNumber}, current state is ${ref.stateNumber}`)
  if (!equalBytes(fromStateHash, stateHash(current)))
    refuse('stale-state', `request ${verbs.state} a different state ${ref.stateNumber} (state hash differs)`)
}

// ---- partitions ----

/**
 * Build the unsigned partition statement among `actives` (any order; `newBalances` aligned with
 * it) of the (sub-)pool state `parent`, with sub-state 0 at height `heightT`.
 * Refuses: no actives, duplicate actives, a non-member, a negative balance, a sum different from
 * the actives' current balances, a height before the parent's.
 */
export function buildPartitionStatement(
  parent: PoolState,
  actives: readonly Uint8Array[],
  newBalances: readonly bigint[],
  heightT: number
): PartitionStatement {
  checkState(parent)
  if (actives.length === 0) refuse('no-actives', 'a partition needs at least one active')
  if (newBalances.length !== actives.length)
    refuse('balance-count', `expected ${actives.length} balances (one per active), got ${newBalances.length}`)
  const pairs = actives.map((key, i) => ({ key, balance: newBalances[i]! }))
  pairs.sort((a, b) => compareBytes(a.key, b.key))
  for (let i = 1; i < pairs.length; i++) {
    if (equalBytes(pairs[i - 1]!.key, pairs[i]!.key))
      refuse('duplicate-active', `active ${short(pairs[i]!.key)} is listed twice`)
  }
  const outpoints = withdrawOutpoints(parent)
  let parentSum = 0n
  const spent = pairs.map(({ key, balance }) => {
    const m = memberOrRefuse(parent.pool, key, 'active')
    if (typeof balance !== 'bigint' || balance < 0n)
      refuse('negative-balance', `new balance of active ${short(key)} is negative: ${String(balance)}`)
    parentSum += parent.balances[m]!
    return outpoints[m]!
  })
  const newSum = sumSats(pairs.map((p) => p.balance))
  if (newSum !== parentSum)
    refuse('sum-not-conserved', `sum of new balances ${newSum} differs from the actives' current balances ${parentSum}`)
  checkHeight(parent, heightT)
  const stmt = makeStatement({
    poolId: parent.pool.poolId,
    parent: stateRefOf(parent),
    heightT,
    actives: pairs.map((p) => new Uint8Array(p.key)),
    spent,
    newBalances: pairs.map((p) => p.balance)
  })
  const v = verifyStatement(stmt, { parent, parentOutpoints: outpoints, requireComplete: false })
  assert(v.ok, `built statement must verify: ${v.ok ? '' : v.reason}`)
  return stmt
}

/** An unsigned partition request (sign it with `signPartitionRequest`). Validates like `buildPartitionStatement`. */
export function makePartitionRequest(
  parent: PoolState,
  params: {
    proposer: Uint8Array
    actives: readonly Uint8Array[]
    newBalances: readonly bigint[]
    heightT: number
    deadlineMs: number
    roundId: Uint8Array
  }
): UnsignedPartitionRequest {
  const stmt = buildPartitionStatement(parent, params.actives, params.newBalances, params.heightT)
  if (indexOfKey(stmt.actives, params.proposer) < 0)
    refuse('not-a-member', `proposer ${short(params.proposer)} is not one of the actives`)
  return {
    poolId: parent.pool.poolId,
    parent: stateRefOf(parent),
    parentStateHash: stateHash(parent),
    proposer: new Uint8Array(params.proposer),
    heightT: params.heightT,
    actives: stmt.actives,
    newBalances: stmt.newBalances,
    deadlineMs: params.deadlineMs,
    roundId: new Uint8Array(params.roundId)
  }
}

/**
 * Check a received partition request against the parent state and return the unsigned statement
 * it asks the actives to sign. Conflict checks against known statements are the board's job.
 */
export function checkPartitionRequest(
  parent: PoolState,
  req: PartitionRequest,
  opts: { nowMs?: number } = {}
): PartitionStatement {
  checkPartitionRequestEnvelope(parent, req, opts)
  return buildPartitionStatement(parent, req.actives, req.newBalances, req.heightT)
}

/**
 * Every check of checkPartitionRequest but the statement's own (buildPartitionStatement): for a
 * caller that derived the statement from the same parent already.
 */
export function checkPartitionRequestEnvelope(
  parent: PoolState,
  req: PartitionRequest,
  opts: { nowMs?: number } = {}
): void {
  checkRequestedState(parent, req.poolId, req.parent, req.parentStateHash, { pool: 'partitions', state: 'partitions' })
  if (indexOfKey(req.actives, req.proposer) < 0)
    refuse('not-a-member', `proposer ${short(req.proposer)} is not one of the actives`)
  if (!verifyPartitionRequestSignature(req))
    refuse('bad-signature', `proposer ${short(req.proposer)}'s signature on the partition request does not verify`)
  if (opts.nowMs !== undefined && opts.nowMs > req.deadlineMs)
    refuse('deadline-passed', `deadline ${req.deadlineMs} passed (now ${opts.nowMs})`)
}

// ---- kick-out ----

export interface Kickout {
  member: Uint8Array
  /** K(N,u): W(N,u) with nLockTime T + X. */
  tx: Tx
  /** T + X. */
  locktime: number
  /**
   * First block height that may include the transaction (Bitcoin: nLockTime < block height), i.e.
   * T + X + 1. It can be broadcast once the chain tip is at height T + X.
   */
  validFromHeight: number
}

/** The kick-out Withdraw of `member` in `state`, and from which height it is valid. */
export function kickout(state: PoolState, member: Uint8Array): Kickout {
  checkState(state)
  const i = memberOrRefuse(state.pool, member, 'member')
  const locktime = kickoutLocktime(state)
  const tx = kickoutTx(state, i)
  assert(tx.locktime === locktime)
  return { member: new Uint8Array(member), tx, locktime, validFromHeight: locktime + 1 }
}

/** True if a kick-out can be broadcast when the chain tip is at `tipHeight`. */
export function isKickoutPublishable(k: Kickout, tipHeight: number): boolean {
  return tipHeight + 1 >= k.validFromHeight
}

// ---- merging partitions back ----

/**
 * State N+1 of the frozen (sub-)pool state `frozen`, holding `folded`: each member's balance where
 * its funds are now (in a partition of N, or of a partition of it, ...; or still at N). Who holds
 * what is the board's knowledge; this checks what needs none: one balance per member, none
 * negative, the pool's total, the height.
 */
export function mergeState(frozen: PoolState, folded: readonly bigint[], heightT: number): PoolState {
  checkState(frozen)
  const n = frozen.pool.members.length
  if (folded.length !== n) refuse('balance-count', `expected ${n} balances (one per member), got ${folded.length}`)
  folded.forEach((b, i) => {
    if (typeof b !== 'bigint' || b < 0n)
      refuse('negative-balance', `balance of member ${i} (${short(frozen.pool.members[i]!)}) is negative: ${String(b)}`)
  })
  const total = sumSats(folded)
  if (total !== frozen.pool.totalSats)
    refuse(
      'sum-not-conserved',
      `the folded balances sum to ${total}, the ${describePoolRef(frozen.pool.ref)} holds ${frozen.pool.totalSats}`
    )
  if (frozen.stateNumber >= MAX_STATE_NUMBER)
    refuse('state-number', `state number ${frozen.stateNumber} cannot be incremented`)
  checkHeight(frozen, heightT)
  const next: PoolState = { pool: frozen.pool, stateNumber: frozen.stateNumber + 1, heightT, balances: [...folded] }
  assertValidState(next)
  return next
}

/** An unsigned merge request of `frozen` into state N+1 holding `folded` (sign it with `signMergeRequest`). */
export function makeMergeRequest(
  frozen: PoolState,
  params: { proposer: Uint8Array; folded: readonly bigint[]; heightT: number; deadlineMs: number; roundId: Uint8Array }
): UnsignedMergeRequest {
  memberOrRefuse(frozen.pool, params.proposer, 'proposer')
  const next = mergeState(frozen, params.folded, params.heightT)
  return {
    poolId: frozen.pool.poolId,
    from: stateRefOf(frozen),
    fromStateHash: stateHash(frozen),
    proposer: new Uint8Array(params.proposer),
    heightT: params.heightT,
    newBalances: next.balances,
    deadlineMs: params.deadlineMs,
    roundId: new Uint8Array(params.roundId)
  }
}

/**
 * Checks a received merge request against `frozen` and against `folded`, the balances this member
 * itself reads off its board, and returns the proposed state N+1. A member signs only the merge
 * it would have built: any other balance is refused, naming the member.
 */
export function checkMergeRequest(
  frozen: PoolState,
  req: MergeRequest,
  folded: readonly bigint[],
  opts: { nowMs?: number } = {}
): PoolState {
  checkRequestedState(frozen, req.poolId, req.from, req.fromStateHash, { pool: 'merges', state: 'merges' })
  memberOrRefuse(frozen.pool, req.proposer, 'proposer')
  if (!verifyMergeRequestSignature(req))
    refuse('bad-signature', `proposer ${short(req.proposer)}'s signature on the merge request does not verify`)
  if (opts.nowMs !== undefined && opts.nowMs > req.deadlineMs)
    refuse('deadline-passed', `deadline ${req.deadlineMs} passed (now ${opts.nowMs})`)
  const expected = mergeState(frozen, folded, req.heightT)
  if (req.newBalances.length !== expected.balances.length)
    refuse(
      'balance-count',
      `expected ${expected.balances.length} balances (one per member), got ${req.newBalances.length}`
    )
  for (let i = 0; i < expected.balances.length; i++) {
    if (req.newBalances[i] !== expected.balances[i]) {
      refuse(
        'merge-mismatch',
        `balance of member ${i} (${short(frozen.pool.members[i]!)}): its partitions hold ${expected.balances[i]}, the merge request says ${req.newBalances[i]}`
      )
    }
  }
  return expected
}
