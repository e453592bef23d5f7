import { randomBytes } from 'node:crypto'
import type { PoolBoard } from '../../board/pool-board.js'
import { equalBytes, toHex } from '../../protocol/bytes.js'
import { equalPoolRefs, indexOfKey, short, type PoolRef } from '../../protocol/common.js'
import {
  makeSignatureShare,
  signMergeRequest,
  type MergeRequest,
  type SignatureShare
} from '../../protocol/requests.js'
import { checkMergeRequest, makeMergeRequest, mergeState, RuleError } from '../../protocol/rules.js'
import { stateHash, type PoolState } from '../../protocol/state.js'
import { statementId } from '../../protocol/statement.js'
import { PoolError } from './propose.js'
import type { SignedRecords } from './signed-record.js'
import { refId } from './view.js'

/**
 * Merging a frozen pool back together: once every member under it is online again, one state
 * N+1 of the frozen pool, signed by all its members, holds each member's balance where its funds
 * are now (the partitions' latest states). The board then closes every pool under it for good
 * (`merged`) and the pool is open again. On chain the merged state supersedes the partitions'
 * branch: it is a newer state of the parent pool (docs/pool.md, "Merging partitions back").
 *
 * The proposer runs the round (gossip, signatures, the board entry); this, inside the member's
 * signer, decides what a member signs, and refuses while any statement or state under the pool is
 * still being signed.
 */

/** A merge this member will not sign: becomes the service's signed refusal. */
export class MergeRefusal extends Error {
  constructor(
    readonly code: string,
    message: string
  ) {
    super(message)
    this.name = 'MergeRefusal'
  }
}

/** A merge is one state N+1: the signing memory records it as a payment of nothing to oneself. */
function mergeMarker(me: Uint8Array): { payer: Uint8Array; payee: Uint8Array; amountSats: bigint } {
  return { payer: me, payee: me, amountSats: 0n }
}

export interface PoolMergeOptions {
  poolBoard: PoolBoard
  memberKey: Uint8Array
  memberSecret: Uint8Array
  memory: SignedRecords
  /** A linearizable read of the board (throws when it cannot be read). */
  read: (timeoutMs: number) => Promise<void>
  /** Names and pool labels for people. */
  label: (ref: PoolRef) => string
  nameOf: (key: Uint8Array) => string
  /** The longest round: a statement signed longer ago than this (plus the slack) is no longer being signed. */
  maxRoundMs: number
  /** How far members' clocks may disagree: a round is over this long after its deadline. */
  clockSlackMs: number
}

export interface MergePlan {
  request: MergeRequest
  proposed: PoolState
  /** Labels of the pools the merge closes, for the answer. */
  folded: string[]
  what: string
}

export class PoolMerge {
  constructor(private readonly options: PoolMergeOptions) {}

  /** The frozen pool `text` names (refId, or a statement id prefix of a partition); the root pool by default. */
  resolvePool(text: string | undefined): PoolRef {
    const { poolBoard } = this.options
    if (text === undefined || text === 'root') return { kind: 'root' }
    const want = text.replace(/^partition\//, '').toLowerCase()
    if (!/^[0-9a-f]{8,64}$/.test(want))
      throw new PoolError(
        'bad-request',
        `pool: expected "root" or a partition's statement id (8 to 64 hex digits), got "${text}"`
      )
    const hits = poolBoard
      .poolList()
      .filter((p) => p.ref.kind === 'partition' && toHex(p.ref.statementId).startsWith(want))
    if (hits.length === 0) throw new PoolError('bad-request', `pool: no partition ${want} on the board`)
    if (hits.length > 1)
      throw new PoolError('bad-request', `pool: ${want} names ${hits.length} partitions; give more of the statement id`)
    return hits[0].ref
  }

  /** The proposer's request: the fold this node's board gives now. */
  plan(ref: PoolRef, deadlineMs: number): MergePlan {
    const { poolBoard, memberKey } = this.options
    if (poolBoard.genesis === null)
      throw new PoolError('no-pool', 'the board holds no pool yet: create one with poolboard pool create')
    const fold = poolBoard.foldPartitions(ref)
    if (!fold.ok)
      throw new PoolError(
        poolBoard.pool(ref)?.status === 'open' ? 'bad-request' : 'refused',
        `cannot merge: ${fold.reason}`
      )
    if (indexOfKey(fold.state.pool.members, memberKey) < 0)
      throw new PoolError('not-member', `you are not a member of the ${this.options.label(ref)}`)
    const heightT = Math.max(fold.state.heightT, poolBoard.chainHeight)
    try {
      const request = signMergeRequest(
        makeMergeRequest(fold.state, {
          proposer: memberKey,
          folded: fold.balances,
          heightT,
          deadlineMs,
          roundId: randomBytes(32)
        }),
        this.options.memberSecret,
        randomBytes(32)
      )
      return {
        request,
        proposed: mergeState(fold.state, fold.balances, heightT),
        folded: fold.folded.map((r) => this.options.label(r)),
        what: `state ${fold.state.stateNumber + 1} of the ${this.options.label(ref)}, merging ${fold.folded.length} partition${fold.folded.length === 1 ? '' : 's'}`
      }
    } catch (err) {
      if (err instanceof RuleError) throw new PoolError('bad-request', err.message)
      throw err
    }
  }

  /**
   * Signs the merge if it is the one this member's own board folds, after a linearizable read,
   * unless a statement or state under the pool is still being signed by this member (the merge
   * would drop it); null if not a member of the pool.
   */
  async decide(req: MergeRequest, opts: { nowMs: number; readTimeoutMs: number }): Promise<SignatureShare | null> {
    const { poolBoard, memberKey, label } = this.options
    await this.options.read(opts.readTimeoutMs)
    const record = poolBoard.pool(req.from.pool)
    if (record === undefined) throw new MergeRefusal('unknown-pool', `the board holds no ${label(req.from.pool)}`)
    if (indexOfKey(record.state.pool.members, memberKey) < 0) return null
    const fold = poolBoard.foldPartitions(req.from.pool)
    if (!fold.ok) throw new MergeRefusal(record.status === 'frozen' ? 'not-mergeable' : record.status, fold.reason)
    await this.refuseWhileSigning(req.from.pool, fold.folded, opts.nowMs)
    const proposed = checkMergeRequest(fold.state, req, fold.balances, { nowMs: opts.nowMs })
    if (req.heightT > poolBoard.chainHeight)
      throw new MergeRefusal('height', `heightT ${req.heightT} is above the chain height ${poolBoard.chainHeight}`)
    const hash = stateHash(proposed)
    // A promise of another N+1 made before the pool froze, in a round long over, cannot be completed any more.
    const kept = await this.options.memory.promiseState(
      fold.state.pool.ref,
      fold.state.stateNumber,
      {
        stateHash: hash,
        roundId: req.roundId,
        heightT: req.heightT,
        payment: mergeMarker(memberKey),
        deadlineMs: req.deadlineMs
      },
      { expiredBeforeMs: opts.nowMs - this.options.clockSlackMs }
    )
    if (!kept.ok) {
      const e = kept.earlier
      throw new MergeRefusal(
        'already-signed',
        `I signed another state ${fold.state.stateNumber + 1} of the ${label(fold.state.pool.ref)} in a round that may still complete (until ${new Date(e.deadlineMs).toISOString()}); I sign one state N+1 per state N: try again after that`
      )
    }
    return makeSignatureShare(
      { kind: 'state', poolId: req.poolId, roundId: req.roundId, subject: hash, member: memberKey },
      this.options.memberSecret,
      randomBytes(32)
    )
  }

  /**
   * Refuses while this member has signed, in a round that may not be over, a statement of a pool
   * under `top` (or `top` itself) or a state of an open pool under it that is not on the board: the
   * merge would fold the balances without it, and its round might still complete.
   */
  private async refuseWhileSigning(top: PoolRef, folded: PoolRef[], nowMs: number): Promise<void> {
    const { poolBoard, memory, label, nameOf } = this.options
    const since = nowMs - this.options.maxRoundMs - this.options.clockSlackMs
    const under = [top, ...folded]
    for (const s of await memory.signedStatements()) {
      if (s.atMs < since) break // newest first
      if (!under.some((r) => equalPoolRefs(r, s.statement.parent.pool))) continue
      if (poolBoard.statement(s.statementId)?.status === 'accepted') continue
      throw new MergeRefusal(
        'signing',
        `statement ${short(statementId(s.statement))} (${s.statement.actives.map(nameOf).join(', ')}) of the ${label(s.statement.parent.pool)} is still being signed ` +
          `(I signed it ${Math.round((nowMs - s.atMs) / 1000)} s ago and it is not on the board): a merge would drop it; try again once its round is over`
      )
    }
    for (const ref of folded) {
      const state = poolBoard.currentState(ref)
      if (state === undefined || poolBoard.pool(ref)?.status !== 'open') continue
      const promised = await memory.signedState(ref, state.stateNumber)
      if (promised === undefined || promised.deadlineMs < nowMs - this.options.clockSlackMs) continue
      throw new MergeRefusal(
        'signing',
        `state ${state.stateNumber + 1} of the ${label(ref)} is still being signed (its round ends ${new Date(promised.deadlineMs).toISOString()}): a merge would drop it; try again once its round is over`
      )
    }
  }

  /** What `pool merge` answers. */
  summary(plan: MergePlan, index: number): Record<string, unknown> {
    const s = plan.proposed
    return {
      pool: refId(s.pool.ref),
      poolLabel: this.options.label(s.pool.ref),
      state: s.stateNumber,
      index,
      merged: plan.folded,
      balances: Object.fromEntries(s.pool.members.map((k, i) => [this.options.nameOf(k), s.balances[i]]))
    }
  }
}

/** True if `a` is the merge marker of the signing memory (for messages about earlier promises). */
export function isMergeMarker(payment: { payer: Uint8Array; payee: Uint8Array; amountSats: bigint }): boolean {
  return payment.amountSats === 0n && equalBytes(payment.payer, payment.payee)
}
