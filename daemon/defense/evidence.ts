import { MAX_MEMBERS } from '../../protocol/limits.js'
import type { ApplyResult, PoolBoard } from '../../board/pool-board.js'
import { encodeEvidenceEntry } from '../../board/entries.js'
import { equalBytes, toHex } from '../../protocol/bytes.js'
import { indexOfKey } from '../../protocol/common.js'
import { buildEvidence, evidenceId, verifyEvidence, type EquivocationEvidence } from '../../protocol/evidence.js'
import type { SignatureShare } from '../../protocol/requests.js'
import {
  conflictingOutpoints,
  statementId,
  statementSignatureOf,
  type PartitionStatement
} from '../../protocol/statement.js'
import type { Logger } from '../host/log.js'
import type { PoolGossip } from '../net/gossip.js'
import type { BoardReplica } from '../replica/board.js'

/**
 * The evidence defense: every node watches the statement signatures that pass by gossip, and two
 * signatures of one member on conflicting statements are evidence of equivocation. The node makes
 * sure the board records it (it gossips the evidence and proposes it: the leader at once, the
 * others if it is still missing later); the signer refuses a proven equivocator's requests
 * (daemon/pool/signer.ts). A lab coalition member runs none of this: it is the attacker.
 */

const MAX_STATEMENTS_WATCHED = 256
/** Shares kept until their request arrives: every member's share of a few rounds of the largest pool. */
const MAX_EARLY_SHARES = 4 * MAX_MEMBERS
const MAX_PENDING_EVIDENCE = 64
const MAX_GOSSIPED_EVIDENCE_IDS = 4_096
/** A node that is not the leader proposes evidence it learned only if the board still lacks it after this long. */
const EVIDENCE_FALLBACK_MS = 3_000
/** A proposed evidence entry must be committed and applied within this long. */
const EVIDENCE_PROPOSE_TIMEOUT_MS = 15_000

interface WatchedStatement {
  id: Uint8Array
  statement: PartitionStatement
  /** Valid signatures seen by gossip, by member key hex. */
  signatures: Map<string, Uint8Array>
  keepUntilMs: number
}

export interface EvidenceDefenseOptions {
  /** Off: nothing is broadcast, proposed or recorded (the statements are still watched). */
  enabled: boolean
  poolBoard: PoolBoard
  gossip: Pick<PoolGossip, 'publish' | 'drop'>
  board: Pick<BoardReplica, 'role'>
  /** A linearizable read of the board. */
  read: () => Promise<void>
  /** Proposes a board entry and resolves with what applying it did on this node. */
  propose: (data: Uint8Array, timeoutMs: number) => Promise<ApplyResult>
  /** Records a detection in the defense log (Defenses.onEvidence). */
  record: (ev: EquivocationEvidence, how: 'detected' | 'learned', where: string) => void
  nameOf: (key: Uint8Array) => string
  /** How long a watched statement is kept: the longest round plus the time its answers are kept. */
  watchMs: number
  logger: Logger
}

export class EvidenceDefense {
  private readonly watched = new Map<string, WatchedStatement>()
  /** Round id hex → statement id hex, for the shares of rounds this node watches. */
  private readonly roundStatement = new Map<string, string>()
  private readonly earlyShares: SignatureShare[] = []
  private readonly pending = new Map<string, EquivocationEvidence>()
  private readonly gossiped = new Set<string>()
  private readonly timers = new Set<NodeJS.Timeout>()
  private stopped = false

  constructor(private readonly options: EvidenceDefenseOptions) {}

  stop(): void {
    this.stopped = true
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
  }

  /** Called with the result of every entry this node applies. */
  onBoardResult(result: ApplyResult): void {
    const { poolBoard } = this.options
    if (result.kind === 'statement' && result.evidenceIds.length > 0 && this.options.enabled) {
      // The board convicted someone from a conflicting statement: tell every member.
      const ids = new Set(result.evidenceIds.map(toHex))
      for (const e of poolBoard.evidence()) {
        if (!ids.has(toHex(e.id))) continue
        this.options.record(
          e.evidence,
          'detected',
          `my board rejected the entry at index ${result.index}: it conflicts with a statement it holds`
        )
        this.gossipOnce(e.evidence)
      }
    }
    if (result.kind === 'evidence' && result.outcome === 'accepted') {
      for (const id of result.evidenceIds) this.pending.delete(toHex(id))
    }
  }

  /** Watches the statement of a partition round: its signatures may prove an equivocation. */
  watchStatement(statement: PartitionStatement, roundId: Uint8Array): void {
    const id = statementId(statement)
    const key = toHex(id)
    const nowMs = Date.now()
    if (!this.watched.has(key)) {
      for (const [k, w] of this.watched) if (w.keepUntilMs < nowMs) this.watched.delete(k)
      while (this.watched.size >= MAX_STATEMENTS_WATCHED) this.watched.delete(this.watched.keys().next().value!)
      this.watched.set(key, {
        id,
        statement: { ...statement, signatures: [] },
        signatures: new Map(),
        keepUntilMs: nowMs + this.options.watchMs
      })
    }
    while (this.roundStatement.size >= MAX_STATEMENTS_WATCHED)
      this.roundStatement.delete(this.roundStatement.keys().next().value!)
    this.roundStatement.set(toHex(roundId), key)
    // Shares that arrived before their request.
    for (let i = this.earlyShares.length - 1; i >= 0; i--) {
      const s = this.earlyShares[i]
      if (equalBytes(s.roundId, roundId)) {
        this.earlyShares.splice(i, 1)
        this.watchShare(s, '(early)')
      }
    }
  }

  /** A statement signature seen by gossip: does it, with a signature we know, prove an equivocation? */
  watchShare(share: SignatureShare, from: string): void {
    const key = this.roundStatement.get(toHex(share.roundId))
    const w = key === undefined ? undefined : this.watched.get(key)
    if (w === undefined) {
      if (this.earlyShares.length >= MAX_EARLY_SHARES) this.earlyShares.shift()
      this.earlyShares.push(share)
      return
    }
    if (!equalBytes(share.subject, w.id) || indexOfKey(w.statement.actives, share.member) < 0) return
    const cache = this.options.poolBoard.signatureCache
    if (!cache.verify(share.signature, share.subject, share.member)) {
      this.options.gossip.drop(
        'forged',
        from,
        `a statement signature by ${this.options.nameOf(share.member)} that does not verify`
      )
      return
    }
    w.signatures.set(toHex(share.member), share.signature)
    for (const c of this.options.poolBoard.conflictsFor(w.statement.spent)) {
      if (equalBytes(c.id, w.id) || c.statement === null) continue
      const other = statementSignatureOf(c.statement, share.member)
      if (other === undefined || !cache.verify(other, c.id, share.member)) continue
      this.found(buildEvidence(share.member, c.statement, other, w.statement, share.signature, c.id, w.id), 'detected')
    }
    for (const o of this.watched.values()) {
      if (o === w) continue
      const other = o.signatures.get(toHex(share.member))
      if (other === undefined || conflictingOutpoints(o.statement, w.statement).length === 0) continue
      this.found(buildEvidence(share.member, o.statement, other, w.statement, share.signature, o.id, w.id), 'detected')
    }
  }

  /** Evidence another member gossiped. */
  onGossipedEvidence(ev: EquivocationEvidence, from: string): void {
    if (!this.options.enabled) return
    const { poolBoard } = this.options
    const poolId = poolBoard.poolId
    if (poolId === null) return
    // Through the signature cache: a signature is checked once per node.
    const v = verifyEvidence(ev, poolId, poolBoard.signatureCache.verifier)
    if (!v.ok) {
      this.options.gossip.drop('forged', from, `evidence: ${v.reason}`)
      return
    }
    this.found(ev, 'gossip')
  }

  /** Makes sure the board records `ev`: gossip it, and propose it (the leader at once, others if it is still missing later). */
  private found(ev: EquivocationEvidence, source: 'detected' | 'gossip'): void {
    if (!this.options.enabled) return
    this.options.record(
      ev,
      source === 'detected' ? 'detected' : 'learned',
      source === 'detected' ? 'its signatures on both, seen by gossip' : 'evidence sent by another member'
    )
    const id = toHex(evidenceId(ev))
    if (this.boardHas(id) || this.pending.has(id)) return
    if (this.pending.size >= MAX_PENDING_EVIDENCE) return
    this.pending.set(id, ev)
    this.options.logger.warn(
      {
        member: this.options.nameOf(ev.member),
        first: toHex(statementId(ev.first)),
        second: toHex(statementId(ev.second)),
        source
      },
      'equivocation: a member signed two conflicting statements'
    )
    if (source === 'detected') this.gossipOnce(ev)
    const propose = (): void => {
      void this.propose(id)
    }
    if (this.options.board.role === 'leader') propose()
    else {
      const timer = setTimeout(() => {
        this.timers.delete(timer)
        propose()
      }, EVIDENCE_FALLBACK_MS)
      timer.unref()
      this.timers.add(timer)
    }
  }

  private async propose(id: string): Promise<void> {
    const ev = this.pending.get(id)
    if (ev === undefined || this.stopped) return
    try {
      if (this.options.board.role !== 'leader') await this.options.read()
      if (this.boardHas(id)) return
      const result = await this.options.propose(encodeEvidenceEntry(ev), EVIDENCE_PROPOSE_TIMEOUT_MS)
      this.options.logger.info(
        { evidence: id.slice(0, 16), outcome: result.outcome, reason: result.reason, index: result.index },
        'proposed equivocation evidence'
      )
    } catch (err) {
      this.options.logger.warn(
        { evidence: id.slice(0, 16), err: (err as Error).message },
        'could not propose equivocation evidence'
      )
    } finally {
      this.pending.delete(id)
    }
  }

  private gossipOnce(ev: EquivocationEvidence): void {
    const id = toHex(evidenceId(ev))
    if (this.gossiped.has(id)) return
    if (this.gossiped.size >= MAX_GOSSIPED_EVIDENCE_IDS) this.gossiped.clear()
    this.gossiped.add(id)
    void this.options.gossip.publish({ kind: 'evidence', evidence: ev })
  }

  private boardHas(idHex: string): boolean {
    return this.options.poolBoard.evidence().some((e) => toHex(e.id) === idHex)
  }
}
