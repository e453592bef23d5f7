import { equalBytes, toHex } from '../../protocol/bytes.js'
import { short } from '../../protocol/common.js'
import type { ShareKind, SignatureShare } from '../../protocol/requests.js'
import type { GossipMessage, PoolGossip, SignedRefusal } from '../net/gossip.js'
import type { PoolMembers } from './members.js'
import { PoolError } from './propose.js'
import { UNAVAILABLE } from './signer.js'
import { byName } from './view.js'
import type { PoolWords } from './words.js'
import type { Logger } from '../host/log.js'
import { traceHop } from './trace.js'

/**
 * The rounds this node runs as a proposer: it publishes a request, again every REPUBLISH_MS until
 * every member asked has signed or refused for good (gossip may miss a peer), or the deadline; and
 * it collects the shares and signed refusals that come back.
 */

export const DEFAULT_ROUND_TIMEOUT_MS = 10_000
export const MAX_ROUND_TIMEOUT_MS = 120_000
/** An answer is kept this long after its round's deadline, to re-send it to a proposer that asks again. */
export const ANSWER_KEPT_MS = 60_000
/** A proposer publishes its request again this often until every member answered (gossip may miss a peer). */
const REPUBLISH_MS = 1_000
/** How long a round waits for the connected members' subscriptions before it first publishes. */
const SUBSCRIBER_WAIT_MS = 2_000
const MAX_OWN_ROUNDS = 16

export type RoundKind = 'genesis' | 'update' | 'partition' | 'merge'

export interface Round {
  id: string
  roundId: Uint8Array
  kind: RoundKind
  /** What is being signed, for people: "state 2 of the root pool". */
  what: string
  poolId: Uint8Array
  shareKind: ShareKind
  subject: Uint8Array
  needed: Uint8Array[]
  shares: Map<string, Uint8Array>
  refusals: Map<string, SignedRefusal>
  startedMs: number
  deadlineMs: number
  wake: () => void
}

export interface PendingRoundView {
  kind: RoundKind
  round: string
  what: string
  deadlineInMs: number
  signed: string[]
  refused: string[]
  missing: string[]
}

export interface RefusalView {
  member: string
  code: string
  reason: string
  conflict: { statementId: string; index: number } | null
}

export interface ProposerRoundsOptions {
  memberKey: Uint8Array
  members: Pick<PoolMembers, 'byMemberKey' | 'nameOf'>
  gossip: Pick<PoolGossip, 'publish' | 'waitForSubscribers' | 'drop'>
  /** Verifies a member's signature (through the pool board's signature cache). */
  verify: (signature: Uint8Array, hash: Uint8Array, key: Uint8Array) => boolean
  /** The hash a refusal's signature is over. */
  refusalHash: (refusal: SignedRefusal) => Uint8Array
  /** Peer ids of the members this node is connected to now. */
  connectedPeerIds: () => string[]
  words: PoolWords
  /** Where the round's debug trace goes (daemon/pool/trace.ts). */
  logger?: Logger
}

export class ProposerRounds {
  private readonly rounds = new Map<string, Round>()
  private stopped = false

  constructor(private readonly options: ProposerRoundsOptions) {}

  stop(): void {
    this.stopped = true
    for (const r of this.rounds.values()) r.wake()
  }

  /** Whether this node runs the round (its own request comes back by gossip: not to be answered). */
  has(roundIdHex: string): boolean {
    return this.rounds.has(roundIdHex)
  }

  pending(nowMs: number): PendingRoundView[] {
    const { words } = this.options
    return [...this.rounds.values()].map((r) => ({
      kind: r.kind,
      round: toHex(r.roundId).slice(0, 16),
      what: r.what,
      deadlineInMs: Math.max(0, r.deadlineMs - nowMs),
      signed: words.nameList(r.needed.filter((k) => r.shares.has(toHex(k)))),
      refused: words.nameList(r.needed.filter((k) => r.refusals.has(toHex(k)))),
      missing: words.nameList(r.needed.filter((k) => !r.shares.has(toHex(k)) && !r.refusals.has(toHex(k))))
    }))
  }

  open(
    kind: RoundKind,
    roundId: Uint8Array,
    poolId: Uint8Array,
    what: string,
    shareKind: ShareKind,
    subject: Uint8Array,
    needed: Uint8Array[],
    deadlineMs: number
  ): Round {
    if (this.stopped) throw new PoolError('busy', 'the node is stopping')
    if (this.rounds.size >= MAX_OWN_ROUNDS)
      throw new PoolError(
        'busy',
        `${MAX_OWN_ROUNDS} rounds are already in progress on this node; try again when one ends`
      )
    const round: Round = {
      id: toHex(roundId),
      roundId,
      kind,
      what,
      poolId,
      shareKind,
      subject,
      needed,
      shares: new Map(),
      refusals: new Map(),
      startedMs: Date.now(),
      deadlineMs,
      wake: () => {}
    }
    this.rounds.set(round.id, round)
    return round
  }

  /**
   * Publishes the round's messages, again every REPUBLISH_MS, until every member answered or the
   * deadline. `own` is this node's own share, decided while the members decide theirs (its checks
   * and theirs run side by side): it is counted and published once decided, after the request; if
   * deciding it fails, the round ends and that failure is thrown.
   */
  async run(round: Round, messages: GossipMessage[], own?: Promise<SignatureShare>): Promise<void> {
    const { gossip, members, memberKey, logger } = this.options
    const hop = (name: string, fields?: Record<string, unknown>): void => {
      if (logger !== undefined) traceHop(logger, round.id, name, fields)
    }
    const out = [...messages]
    let requestOut = false
    let ownFailed: { err: unknown } | null = null
    const ownDone =
      own === undefined
        ? Promise.resolve()
        : own.then(
            async (share) => {
              round.shares.set(toHex(share.member), share.signature)
              const msg: GossipMessage = { kind: 'share', share }
              out.push(msg)
              hop('own-share')
              if (settled(round)) round.wake()
              // Before the request went out once, the first publish picks it up from `out`.
              if (requestOut) await gossip.publish(msg)
            },
            (err: unknown) => {
              ownFailed = { err }
              round.wake()
            }
          )
    try {
      const connected = new Set(this.options.connectedPeerIds())
      const peers = round.needed
        .filter((k) => !equalBytes(k, memberKey))
        .map((k) => members.byMemberKey(k)?.peerId)
        .filter((p): p is string => p !== undefined && connected.has(p))
      hop('subscribers-wait')
      const missing = await gossip.waitForSubscribers(
        peers,
        Math.min(SUBSCRIBER_WAIT_MS, Math.max(0, round.deadlineMs - Date.now()))
      )
      hop('subscribers-ready', { missing: missing.length })
      let publishes = 0
      while (!this.stopped && ownFailed === null) {
        for (const m of out) await gossip.publish(m)
        requestOut = true
        hop('published', { publishes: ++publishes })
        if (settled(round) || ownFailed !== null) break
        const waitMs = Math.min(REPUBLISH_MS, round.deadlineMs - Date.now())
        if (waitMs <= 0) break
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, waitMs)
          round.wake = () => {
            clearTimeout(timer)
            resolve()
          }
        })
        if (settled(round) || Date.now() >= round.deadlineMs) break
      }
    } finally {
      this.rounds.delete(round.id)
    }
    await ownDone
    if (ownFailed !== null) throw (ownFailed as { err: unknown }).err
  }

  /** Throws the round's failure (who refused and why, who did not answer, what to do) unless every member signed. */
  throwUnlessComplete(round: Round, action: string, advice: (answered: string[]) => string): void {
    if (round.shares.size === round.needed.length) return
    const { words, members } = this.options
    const me = toHex(this.options.memberKey)
    const missing = round.needed.filter((k) => !round.shares.has(toHex(k)) && !round.refusals.has(toHex(k)))
    const refusals: RefusalView[] = [...round.refusals.values()]
      .sort((a, b) => byName(members.nameOf(a.member), members.nameOf(b.member)))
      .map((r) => ({
        member: members.nameOf(r.member),
        code: r.code,
        reason: r.reason,
        conflict: r.conflict === null ? null : { statementId: toHex(r.conflict.statementId), index: r.conflict.index }
      }))
    const answered = words.nameList(
      round.needed.filter((k) => toHex(k) !== me && (round.shares.has(toHex(k)) || round.refusals.has(toHex(k))))
    )
    const parts: string[] = []
    if (refusals.length > 0)
      parts.push(
        refusals
          .map((r) => `${r.member} ${r.code === UNAVAILABLE ? 'could not answer' : 'refused'}: ${r.reason}`)
          .join('; ')
      )
    if (missing.length > 0)
      parts.push(
        `${words.names(missing)} did not sign before the deadline (${Math.round((round.deadlineMs - round.startedMs) / 1000)} s)`
      )
    const hint = missing.length > 0 ? advice(answered) : ''
    throw new PoolError('round-failed', `could not ${action}: ${parts.join('; ')}${hint === '' ? '' : `; ${hint}`}`, {
      missing: words.nameList(missing),
      signed: words.nameList(round.needed.filter((k) => round.shares.has(toHex(k)))),
      refusals
    })
  }

  /** A share seen by gossip: counted if it is for one of our rounds; false if it was dropped as forged. */
  onShare(share: SignatureShare, from: string): boolean {
    const round = this.rounds.get(toHex(share.roundId))
    if (round === undefined) return true
    const { gossip, members } = this.options
    if (!equalBytes(share.subject, round.subject) || share.kind !== round.shareKind) {
      gossip.drop(
        'forged',
        from,
        `a share for round ${toHex(share.roundId).slice(0, 16)} over another ${share.kind} than the one being signed`
      )
      return false
    }
    if (!round.needed.some((k) => equalBytes(k, share.member))) {
      gossip.drop(
        'forged',
        from,
        `a share from ${short(share.member)}, who is not asked in round ${round.id.slice(0, 16)}`
      )
      return false
    }
    if (!this.options.verify(share.signature, share.subject, share.member)) {
      gossip.drop('forged', from, `a share whose signature by ${members.nameOf(share.member)} does not verify`)
      return false
    }
    round.shares.set(toHex(share.member), share.signature)
    round.refusals.delete(toHex(share.member))
    if (this.options.logger !== undefined)
      traceHop(this.options.logger, round.id, 'share-received', { member: members.nameOf(share.member) })
    if (settled(round)) round.wake()
    return true
  }

  onRefusal(refusal: SignedRefusal, from: string): void {
    const round = this.rounds.get(toHex(refusal.roundId))
    if (round === undefined) return // someone else's round
    const { gossip, members } = this.options
    if (!round.needed.some((k) => equalBytes(k, refusal.member))) {
      gossip.drop(
        'forged',
        from,
        `a refusal from ${short(refusal.member)}, who is not asked in round ${round.id.slice(0, 16)}`
      )
      return
    }
    if (!this.options.verify(refusal.signature, this.options.refusalHash(refusal), refusal.member)) {
      gossip.drop('forged', from, `a refusal whose signature by ${members.nameOf(refusal.member)} does not verify`)
      return
    }
    if (round.shares.has(toHex(refusal.member))) return
    round.refusals.set(toHex(refusal.member), refusal)
    if (settled(round)) round.wake()
  }
}

/** Every member signed or refused for good; a member that could not decide yet may still sign. */
function settled(round: Round): boolean {
  let final = 0
  for (const r of round.refusals.values()) if (r.code !== UNAVAILABLE) final++
  return round.shares.size + final >= round.needed.length
}

/** A command's round timeout, checked: DEFAULT_ROUND_TIMEOUT_MS when not given. */
export function roundTimeout(timeoutMs: number | undefined): number {
  const t = timeoutMs ?? DEFAULT_ROUND_TIMEOUT_MS
  if (!Number.isSafeInteger(t) || t < 100 || t > MAX_ROUND_TIMEOUT_MS)
    throw new PoolError('bad-request', `timeout: expected 100 to ${MAX_ROUND_TIMEOUT_MS} ms, got ${String(timeoutMs)}`)
  return t
}
