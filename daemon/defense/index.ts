import { equalBytes, toHex } from '../../protocol/bytes.js'
import { short } from '../../protocol/common.js'
import type { EquivocationEvidence } from '../../protocol/evidence.js'
import { statementId, verifyStatement, type PartitionStatement } from '../../protocol/statement.js'
import type { DefenseConfig } from '../host/config.js'
import { StatementCheck } from './ask-members.js'
import { HashChainDefense } from './hash-chain.js'
import { DefenseLog, type DefenseAlarm } from './log.js'
import type { DefensesOptions } from './options.js'
import { QuorumRead } from './quorum-read.js'
import type { DefenseRefusal } from './refusal.js'

// daemon/defense/: the defenses against a coalition of board hosts that hides a committed
// partition statement, one file per defense, and what they share (refusal.ts, log.ts, options.ts).

/**
 * Defenses against a coalition of board hosts that hides a committed partition statement, so that
 * a member catching up from them is fed a history without it and signs a conflicting partition
 * (docs/lab.md). Each is a setting (docs/operations.md), on by default:
 *
 * - quorum read (quorum-read.ts): compare the board history with a majority of members;
 * - hash chain (hash-chain.ts): a leader that rewrites a committed entry becomes a proof, with
 *   the statements this node holds, sent to every member;
 * - gossip check (ask-members.ts, setting `gossipCheck`): ask every reachable member, by a
 *   request to each, for the statements its board holds on the outputs;
 * - evidence (evidence.ts): equivocation evidence broadcast, and refusal of proven equivocators.
 *
 * Every detection is kept in a bounded log (`GET /v1/defense`): which defense, what it saw, when.
 */

export { DefenseLog, type DefenseAlarm, type DefenseName } from './log.js'
export type { DefensesOptions } from './options.js'
export { DefenseRefusal } from './refusal.js'

export interface DefenseStatus {
  /** What this node runs (a coalition member in the lab runs none). */
  enabled: DefenseConfig
  labCoalition: boolean
  alarms: DefenseAlarm[]
  /** Statements other members proved this node's board lacks (hash-chain proofs). */
  reported: Array<{ statementId: string; index: number; reporter: string }>
  quorumVerifiedThrough: number
}

/** The defenses of one node, wired to its board, member requests and pool board. */
export class Defenses {
  readonly log: DefenseLog
  readonly enabled: DefenseConfig
  private readonly quorum: QuorumRead
  private readonly statements: StatementCheck
  private readonly hashChain: HashChainDefense

  constructor(private readonly options: DefensesOptions) {
    const { config } = options
    this.log = new DefenseLog(options.logger)
    // A coalition member (lab) defends nothing: it is the attacker.
    this.enabled =
      config.lab && config.labCoalition
        ? { quorumRead: false, hashChain: false, gossipCheck: false, evidence: false }
        : { ...config.defenses }
    const nameOf = (peerId: string): string =>
      config.members.find((m) => m.peerId === peerId)?.name ?? peerId.slice(0, 12)
    const answerDelayMs = config.lab ? config.labAnswerDelayMs : 0
    const shared = {
      ...options,
      nameOf,
      nameOfKey: (key: Uint8Array) => this.nameOfKey(key),
      log: this.log,
      answerDelayMs,
      verify: (s: PartitionStatement) => this.verified(s)
    }
    this.quorum = new QuorumRead({ ...shared, enabled: this.enabled.quorumRead })
    this.statements = new StatementCheck({ ...shared, enabled: this.enabled.gossipCheck })
    this.hashChain = new HashChainDefense({ ...shared, enabled: this.enabled.hashChain })
    options.applied.subscribe(({ entries }) => {
      this.quorum.onApplied(entries)
    })
    options.alarms.subscribe((alarm) => {
      this.hashChain.onAlarm(alarm)
    })
  }

  async start(): Promise<void> {
    // Every node answers the questions, whatever it runs itself: they cost little and help the others.
    await this.quorum.start()
    await this.statements.start()
    await this.hashChain.start()
  }

  stop(): void {
    this.quorum.stop()
    this.hashChain.stop()
  }

  /** A member connected: re-offer it the proofs it has not acknowledged (it may have been offline). */
  onPeerConnected(peerId: string): void {
    this.hashChain.offerTo(peerId)
  }

  /**
   * A statement another member proved this node's board lacks, and that conflicts with `statement`:
   * checked before anything else, it needs no network.
   */
  reportedConflict(statement: PartitionStatement): DefenseRefusal | null {
    return this.hashChain.conflictWith(statement)
  }

  /**
   * Checks that need other members, run after the linearizable read and the board's own conflict
   * check: the quorum read and the gossip check (at once, to keep the round short). Throws
   * DefenseRefusal naming what was found.
   */
  /** A request to sign arrived: the quorum read of what is applied starts now, beside the board read. */
  prepare(): void {
    this.quorum.prepare()
  }

  async beforeSign(
    statement: PartitionStatement,
    deadlineMs: number,
    hop: (name: string) => void = () => {}
  ): Promise<void> {
    const [quorum, gossip] = await Promise.all([
      this.quorum.beforeSign(deadlineMs).then(
        () => {
          hop('quorum-read')
          return null
        },
        (err: unknown) => err
      ),
      this.statements.beforeSign(statement, deadlineMs).then(
        () => {
          hop('ask-members')
          return null
        },
        (err: unknown) => err
      )
    ])
    for (const err of [quorum, gossip]) if (err !== null) throw err
  }

  /** Equivocation evidence this node found (or was sent): recorded, when the evidence defense is on. */
  onEvidence(ev: EquivocationEvidence, how: 'detected' | 'learned', where: string): void {
    if (!this.enabled.evidence) return
    const accused = this.nameOfKey(ev.member)
    const first = statementId(ev.first)
    const second = statementId(ev.second)
    this.log.record(`evidence:${how}:${toHex(first)}:${toHex(second)}:${toHex(ev.member)}`, {
      defense: 'evidence',
      how,
      message: `${accused} signed two conflicting statements, ${short(first)} and ${short(second)} (${where})`,
      members: [accused],
      index: null,
      statementId: toHex(second)
    })
  }

  status(): DefenseStatus {
    return {
      enabled: { ...this.enabled },
      labCoalition: this.options.config.lab && this.options.config.labCoalition,
      alarms: this.log.list(),
      reported: this.hashChain.reported(),
      quorumVerifiedThrough: this.quorum.verifiedThrough
    }
  }

  private nameOfKey(key: Uint8Array): string {
    const genesis = this.options.poolBoard.genesis
    const peerId = genesis?.members.find((m) => equalBytes(m.key, key))?.peerId
    const name = peerId === undefined ? undefined : this.options.config.members.find((m) => m.peerId === peerId)?.name
    return name ?? short(key)
  }

  /**
   * A statement another member sent: checked against this node's view of its parent state (it must
   * be a partition of the state it claims, complete, every signature valid). Null if it is not a
   * statement of a state this node holds as current (then it conflicts with nothing it would sign).
   */
  private verified(s: PartitionStatement): { ok: true } | { ok: false; reason: string } | null {
    const { poolBoard } = this.options
    if (poolBoard.poolId === null || !equalBytes(s.poolId, poolBoard.poolId))
      return { ok: false, reason: 'about another pool' }
    const parent = poolBoard.currentState(s.parent.pool)
    if (parent === undefined || parent.stateNumber !== s.parent.stateNumber) return null
    return verifyStatement(s, { parent })
  }
}
