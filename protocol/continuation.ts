/**
 * Kick-out continuations: what a pool becomes once one member has been kicked out.
 *
 * At state N of pool P, every member holds the kick-out Withdraw K(N,u) of every other member
 * (W(N,u) with nLockTime T + X, witnesses shared). Once the chain passes T + X anyone may publish
 * K(N,u): its output 0 pays u's balance to u on chain, and its output 1 (the remainder, total minus
 * u's balance) stays with the other members. That remainder output funds the continuation:
 *
 *     ref      { kind: 'continuation', parent: P.ref, parentStateNumber: N, evictedIndex: i(u) }
 *     funding  (txid(K(N,u)), 1)
 *     members  P's members without u (still sorted)
 *     total    P's total minus u's balance at N (= the value of the remainder output)
 *     X        inherited
 *     state 0  the other members' balances at N, T = the height at which K(N,u) confirmed
 *
 * State 0 needs no new signatures: every member already signed state N, whose hash covers the
 * txid of K(N,u), and the continuation's state 0 is derived from N and the kick height alone.
 * Later states of the continuation need the signatures of all the remaining members, exactly as
 * for any other pool.
 *
 * When u owned the whole pool, K(N,u) has no remainder output and nothing continues.
 */
import assert from 'node:assert/strict'
import { describePoolRef, short, sumSats } from './common.js'
import { LOCKTIME_THRESHOLD } from './limits.js'
import { kickout, RuleError, type Kickout } from './rules.js'
import { memberIndex, stateProblem, type Pool, type PoolState } from './state.js'
import { txid } from './tx.js'

/** The outcome of kicking a member out of a state. */
export interface KickoutContinuation {
  /** K(N,u), its locktime and the first height that may include it. */
  kickout: Kickout
  /** Index of the evicted member in the parent pool. */
  evictedIndex: number
  /** What the evicted member receives on chain (output 0 of K(N,u)). */
  exitSats: bigint
  /** The continuing pool and its state 0, or null when the evicted member held everything. */
  pool: Pool | null
  state: PoolState | null
}

/**
 * The continuation of `parent`'s pool after the kick-out of `member` at state `parent`, with
 * K(N,u) confirmed in the block at `kickHeight`. Throws `RuleError` if `member` is not a member, if
 * `kickHeight` is before the kick-out's validity height, or if the continuation's T + X would reach
 * the locktime threshold.
 */
export function kickoutContinuation(parent: PoolState, member: Uint8Array, kickHeight: number): KickoutContinuation {
  const k = kickout(parent, member)
  const i = memberIndex(parent.pool, member)
  assert(i >= 0, 'kickout() accepted a non-member')
  if (!Number.isInteger(kickHeight) || kickHeight < k.validFromHeight) {
    throw new RuleError(
      'height',
      `the kick-out of member ${i} (${short(member)}) from state ${parent.stateNumber} of the ${describePoolRef(parent.pool.ref)} ` +
        `is valid from height ${k.validFromHeight} (T ${parent.heightT} + X ${parent.pool.kickoutDelayBlocks} + 1); the chain is at ${kickHeight}`
    )
  }
  if (kickHeight + parent.pool.kickoutDelayBlocks >= LOCKTIME_THRESHOLD) {
    throw new RuleError(
      'height',
      `kick height ${kickHeight} + kick-out delay ${parent.pool.kickoutDelayBlocks} reaches the locktime threshold ${LOCKTIME_THRESHOLD}`
    )
  }
  const exitSats = parent.balances[i]!
  const restSats = parent.pool.totalSats - exitSats
  assert(k.tx.outputs[0]!.valueSats === exitSats, 'K(N,u) output 0 must pay the evicted balance')
  if (restSats === 0n) {
    assert(k.tx.outputs.length === 1, 'a kick-out without remainder has a single output')
    return { kickout: k, evictedIndex: i, exitSats, pool: null, state: null }
  }
  assert(
    k.tx.outputs.length === 2 && k.tx.outputs[1]!.valueSats === restSats,
    'K(N,u) output 1 must hold the remainder'
  )
  const keep = (_: unknown, j: number): boolean => j !== i
  const pool: Pool = {
    poolId: parent.pool.poolId,
    ref: { kind: 'continuation', parent: parent.pool.ref, parentStateNumber: parent.stateNumber, evictedIndex: i },
    members: parent.pool.members.filter(keep).map((m) => new Uint8Array(m)),
    funding: { txid: txid(k.tx), vout: 1 },
    totalSats: restSats,
    kickoutDelayBlocks: parent.pool.kickoutDelayBlocks
  }
  const state: PoolState = { pool, stateNumber: 0, heightT: kickHeight, balances: parent.balances.filter(keep) }
  assert(sumSats(state.balances) + exitSats === parent.pool.totalSats, 'a kick-out must conserve value')
  const p = stateProblem(state)
  assert(p === null, `continuation state 0 must be valid: ${p?.field}: ${p?.reason}`)
  return { kickout: k, evictedIndex: i, exitSats, pool, state }
}
