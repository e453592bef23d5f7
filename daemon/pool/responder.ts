import { randomBytes } from 'node:crypto'
import type { PoolBoard } from '../../board/pool-board.js'
import { equalBytes, toHex } from '../../protocol/bytes.js'
import { indexOfKey, short } from '../../protocol/common.js'
import {
  partitionRequestSigningHash,
  type MergeRequest,
  type PartitionRequest,
  type SignatureShare,
  type UpdateRequest
} from '../../protocol/requests.js'
import { RuleError } from '../../protocol/rules.js'
import type { PartitionStatement } from '../../protocol/statement.js'
import type { Logger } from '../host/log.js'
import { signRefusal, ZERO_POOL_ID, type GenesisProposal, type GossipMessage, type PoolGossip } from '../net/gossip.js'
import { ANSWER_KEPT_MS, MAX_ROUND_TIMEOUT_MS } from './rounds.js'
import { Forged, UNAVAILABLE, WontSign, type MemberSigner } from './signer.js'
import { traceHop } from './trace.js'

/**
 * This member's side of other members' rounds: it works out (once per round) whether it signs,
 * with the signer, and publishes the share or the signed refusal; a request seen again (the
 * proposer republished it) gets the same answer again.
 */

const MAX_ANSWERS_KEPT = 1_024
/** Answers being worked out at once (each may wait for a linearizable read). */
const MAX_TASKS = 64

interface Answer {
  msg: GossipMessage | null
  keepUntilMs: number
}

export interface RoundResponderOptions {
  memberKey: Uint8Array
  memberSecret: Uint8Array
  poolBoard: PoolBoard
  gossip: Pick<PoolGossip, 'publish' | 'drop'>
  signer: MemberSigner
  /** Whether this node runs the round itself (then it does not answer its own request). */
  isOwnRound: (roundIdHex: string) => boolean
  /** Every partition request's statement is watched, whoever we are (the evidence defense). */
  watchStatement: (statement: PartitionStatement, roundId: Uint8Array) => void
  /** Told of each answer: signed (null) or refused with a code (metrics). */
  onAnswer?: (refusalCode: string | null) => void
  logger: Logger
}

export class RoundResponder {
  private readonly answers = new Map<string, Answer>()
  private readonly answering = new Set<string>()
  private tasks = 0

  constructor(private readonly options: RoundResponderOptions) {}

  onGenesisProposal(proposal: GenesisProposal, from: string): void {
    this.answer(
      proposal.roundId,
      proposal.deadlineMs,
      from,
      async () => this.options.signer.decideGenesis(proposal),
      ZERO_POOL_ID
    )
  }

  onUpdateRequest(request: UpdateRequest, from: string): void {
    this.answer(
      request.roundId,
      request.deadlineMs,
      from,
      async () => await this.options.signer.decideUpdate(request),
      request.poolId
    )
  }

  onMergeRequest(request: MergeRequest, from: string): void {
    this.answer(
      request.roundId,
      request.deadlineMs,
      from,
      async () => await this.options.signer.decideMerge(request),
      request.poolId
    )
  }

  onPartitionRequest(request: PartitionRequest, from: string): void {
    const { poolBoard, signer } = this.options
    if (poolBoard.poolId === null || !equalBytes(request.poolId, poolBoard.poolId)) {
      this.wrongPool(request.poolId, from)
      return
    }
    const active = indexOfKey(request.actives, this.options.memberKey) >= 0
    // The signature is checked first, by actives too: a forged request must cost no linearizable
    // read and take no answer slot (the check when deciding then hits the signature cache).
    if (!poolBoard.signatureCache.verify(request.signature, partitionRequestSigningHash(request), request.proposer)) {
      this.options.gossip.drop(
        'forged',
        from,
        `a partition request whose proposer ${short(request.proposer)}'s signature does not verify`
      )
      return
    }
    // Derived once, here: watched whoever we are (its signatures may prove an equivocation), and
    // handed to the signer. A request that does not derive a statement is refused by the actives.
    const derived = signer.derive(request)
    if (derived !== null) this.options.watchStatement(derived.statement, request.roundId)
    if (!active) return // a passive: not asked
    this.answer(
      request.roundId,
      request.deadlineMs,
      from,
      async () => await signer.decidePartition(request, { alreadyRead: false, derived }),
      request.poolId
    )
  }

  private answer(
    roundId: Uint8Array,
    deadlineMs: number,
    from: string,
    decide: () => Promise<SignatureShare | null>,
    poolId: Uint8Array
  ): void {
    const { gossip, logger } = this.options
    const key = toHex(roundId)
    traceHop(logger, key, 'request-received', { from })
    const kept = this.answers.get(key)
    if (kept !== undefined) {
      if (kept.msg !== null) void gossip.publish(kept.msg)
      return
    }
    if (this.answering.has(key) || this.options.isOwnRound(key)) return
    if (this.tasks >= MAX_TASKS) {
      gossip.drop('busy', from, `more than ${MAX_TASKS} requests being answered`)
      return
    }
    this.tasks++
    this.answering.add(key)
    const run = async (): Promise<void> => {
      let msg: GossipMessage | null
      const fromMs = performance.now()
      try {
        const share = await decide()
        logger.debug(
          { round: key.slice(0, 16), decideMs: Math.round(performance.now() - fromMs), signed: share !== null },
          'answered a request'
        )
        if (share !== null) this.options.onAnswer?.(null)
        msg = share === null ? null : { kind: 'share', share }
      } catch (err) {
        if (err instanceof Forged) {
          gossip.drop('wrong-pool', from, err.message)
          return
        }
        if (!(err instanceof WontSign || err instanceof RuleError))
          logger.warn({ round: key.slice(0, 16), err: (err as Error).message }, 'could not answer a request')
        const code = err instanceof WontSign ? err.code : err instanceof RuleError ? err.code : UNAVAILABLE
        const conflict = err instanceof WontSign ? err.conflict : null
        const refusal = signRefusal(
          { poolId, roundId, member: this.options.memberKey, code, reason: (err as Error).message, conflict },
          this.options.memberSecret,
          randomBytes(32)
        )
        msg = { kind: 'refusal', refusal }
        logger.info({ round: key.slice(0, 16), code, reason: refusal.reason }, 'refused to sign')
        this.options.onAnswer?.(code)
      }
      // Not asked (null) is remembered too, so a republished request costs nothing. A refusal for
      // want of the board (no leader yet) is not: the proposer's next republish gets a fresh try.
      if (msg?.kind !== 'refusal' || msg.refusal.code !== UNAVAILABLE) this.keepAnswer(key, msg, deadlineMs)
      if (msg !== null) {
        await gossip.publish(msg)
        traceHop(logger, key, 'answer-published', { kind: msg.kind })
      }
    }
    run()
      .catch((err: unknown) => {
        logger.warn({ err: (err as Error).message }, 'answering a request failed')
      })
      .finally(() => {
        this.tasks--
        this.answering.delete(key)
      })
  }

  private keepAnswer(key: string, msg: GossipMessage | null, deadlineMs: number): void {
    const nowMs = Date.now()
    for (const [k, a] of this.answers) if (a.keepUntilMs < nowMs) this.answers.delete(k)
    while (this.answers.size >= MAX_ANSWERS_KEPT) this.answers.delete(this.answers.keys().next().value!)
    this.answers.set(key, {
      msg,
      keepUntilMs: Math.max(nowMs, Math.min(deadlineMs, nowMs + MAX_ROUND_TIMEOUT_MS)) + ANSWER_KEPT_MS
    })
  }

  private wrongPool(poolId: Uint8Array, from: string): void {
    // Before our board applied the genesis we cannot judge a message about the pool: not a fault.
    if (this.options.poolBoard.poolId === null) return
    this.options.gossip.drop(
      'wrong-pool',
      from,
      `a message about pool ${short(poolId)}, not ${short(this.options.poolBoard.poolId)}`
    )
  }
}
