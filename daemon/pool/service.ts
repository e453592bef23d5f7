import type { GossipSub } from '@libp2p/gossipsub'
import type { ApplyResult, PoolBoard } from '../../board/pool-board.js'
import { toHex } from '../../protocol/bytes.js'
import { statementId, type PartitionStatement } from '../../protocol/statement.js'
import type { Database } from '../../storage/database.js'
import type { Defenses } from '../defense/index.js'
import { EvidenceDefense } from '../defense/evidence.js'
import type { NodeConfig } from '../host/config.js'
import type { Logger } from '../host/log.js'
import { PoolGossip, poolTopic, refusalSigningHash, type GossipMessage } from '../net/gossip.js'
import type { MemberRpc } from '../net/rpc.js'
import type { BoardReplica } from '../replica/board.js'
import type { AppliedEvents } from '../replica/pool-applier.js'
import { PoolMembers } from './members.js'
import { boardReader, type BoardRead, type EntryProposer } from './propose.js'
import { PoolProposer } from './proposer.js'
import { RoundResponder } from './responder.js'
import type {
  CreateResult,
  EvidenceView,
  KickResult,
  PartitionResult,
  PayResult,
  PoolStatus,
  StatementSummary
} from './results.js'
import { ANSWER_KEPT_MS, MAX_ROUND_TIMEOUT_MS, ProposerRounds } from './rounds.js'
import { MemberSigner } from './signer.js'
import { homeOf, poolStatusView } from './view.js'
import { unfinished, type UnfinishedView } from './before-signing.js'
import { PoolWords } from './words.js'

// daemon/pool/: the pool on top of the board, on one member's node: this facade, the proposer's
// commands and rounds, the member's signer and its answers to other members' rounds, who is who
// (members.ts), what the member signed (signed-record.ts), the views and the simulated chain.

export type { PendingRoundView, RefusalView } from './rounds.js'
export type { PoolStatus, StatementSummary } from './results.js'
export { DEFAULT_ROUND_TIMEOUT_MS, MAX_ROUND_TIMEOUT_MS } from './rounds.js'

/**
 * The pool on top of the board, on one member's node.
 *
 * Every pool fact is a board entry (genesis, signed states, partition statements, evidence,
 * blocks, kick-outs); the members gather the signatures that make them by gossip and propose the
 * entries. What is current is always what the pool board applied. The parts, each owning its state:
 *
 * - the proposer (proposer.ts) runs this member's commands, with its rounds (rounds.ts): an update
 *   (every member of the (sub-)pool signs state N+1), a partition (every active signs the
 *   statement), a genesis (every member signs state 0), a merge of a frozen pool (merge.ts);
 * - the signer (signer.ts) decides what this member signs, and the responder (responder.ts)
 *   answers other members' rounds with its share or a signed refusal;
 * - the evidence defense (daemon/defense/evidence.ts) watches statement signatures for
 *   equivocation and makes sure the board records the evidence.
 *
 * This class builds them, routes the gossip to them, and shows the pool (status, evidence).
 */

export interface PoolServiceOptions {
  selfPeerId: string
  memberKey: Uint8Array
  memberSecret: Uint8Array
  config: NodeConfig
  pubsub: GossipSub
  rpc: MemberRpc
  board: Pick<BoardReplica, 'linearizableRead' | 'role'>
  /** Whether a peer is a pool member (the gossip drops everyone else's messages). */
  isMember: (peerId: string) => boolean
  poolBoard: PoolBoard
  db: Database
  /** Proposes the pool's entries through the leader and answers with what applying them did here. */
  entries: EntryProposer
  /** What this node applies (daemon/replica/pool-applier.ts). */
  applied: AppliedEvents
  /** Peer ids of the members this node is connected to now. */
  connectedPeerIds: () => string[]
  /** Told of each answer this member gives to another's request: signed, or refused with a code (metrics). */
  onAnswer?: (refusalCode: string | null) => void
  logger: Logger
  /** The defenses against a coalition hiding a statement (daemon/defense/index.ts); none when absent. */
  defenses?: Defenses
}

export class PoolService {
  readonly members: PoolMembers
  readonly gossip: PoolGossip
  readonly entries: EntryProposer
  readonly words: PoolWords
  readonly read: BoardRead
  readonly signer: MemberSigner
  readonly proposer: PoolProposer
  private readonly rounds: ProposerRounds
  private readonly responder: RoundResponder
  private readonly evidence: EvidenceDefense
  private stopped = false

  constructor(private readonly options: PoolServiceOptions) {
    const { config, rpc, poolBoard, logger, memberKey, memberSecret, defenses } = options
    this.members = new PoolMembers({
      selfPeerId: options.selfPeerId,
      selfKey: memberKey,
      selfSecret: memberSecret,
      members: config.members,
      rpc,
      signatureCache: poolBoard.signatureCache,
      logger
    })
    this.gossip = new PoolGossip({
      pubsub: options.pubsub,
      topic: poolTopic(config.members.map((m) => m.peerId)),
      isMember: options.isMember,
      logger,
      onMessage: (msg, from) => {
        this.onGossip(msg, from)
      }
    })
    this.entries = options.entries
    this.words = new PoolWords(poolBoard, (k) => this.members.nameOf(k))
    this.read = boardReader(options.board)
    // The evidence defense: broadcast evidence, refuse proven equivocators (a lab coalition member does neither).
    const evidenceOn = defenses?.enabled.evidence ?? config.defenses.evidence
    this.evidence = new EvidenceDefense({
      enabled: evidenceOn,
      poolBoard,
      gossip: this.gossip,
      board: options.board,
      read: async () => {
        await this.read()
      },
      propose: async (data, timeoutMs) => await this.entries.propose(data, timeoutMs),
      record: (ev, how, where) => {
        defenses?.onEvidence(ev, how, where)
      },
      nameOf: (k) => this.members.nameOf(k),
      watchMs: MAX_ROUND_TIMEOUT_MS + ANSWER_KEPT_MS,
      logger
    })
    this.signer = new MemberSigner({
      selfPeerId: options.selfPeerId,
      memberKey,
      memberSecret,
      configMembers: config.members,
      members: this.members,
      poolBoard,
      db: options.db,
      read: this.read,
      words: this.words,
      defenses,
      refuseEquivocators: evidenceOn,
      maxRoundMs: MAX_ROUND_TIMEOUT_MS,
      logger: options.logger
    })
    this.rounds = new ProposerRounds({
      memberKey,
      members: this.members,
      gossip: this.gossip,
      verify: (signature, hash, key) => poolBoard.signatureCache.verify(signature, hash, key),
      refusalHash: refusalSigningHash,
      connectedPeerIds: options.connectedPeerIds,
      words: this.words,
      logger
    })
    const watchStatement = (statement: PartitionStatement, roundId: Uint8Array): void => {
      this.evidence.watchStatement(statement, roundId)
    }
    this.responder = new RoundResponder({
      memberKey,
      memberSecret,
      poolBoard,
      gossip: this.gossip,
      signer: this.signer,
      isOwnRound: (id) => this.rounds.has(id),
      watchStatement,
      onAnswer: options.onAnswer,
      logger
    })
    this.proposer = new PoolProposer({
      memberKey,
      memberSecret,
      poolBoard,
      members: this.members,
      entries: this.entries,
      rounds: this.rounds,
      signer: this.signer,
      read: this.read,
      words: this.words,
      watchStatement,
      reachability: {
        peerOf: (k) => this.members.byMemberKey(k)?.peerId,
        nameOf: (k) => this.members.nameOf(k),
        connectedPeerIds: options.connectedPeerIds
      },
      logger
    })
    if (poolBoard.genesis !== null) this.members.adoptGenesis(poolBoard.genesis)
    options.applied.subscribe(({ results }) => {
      for (const r of results) this.onBoardResult(r)
    })
  }

  async start(): Promise<void> {
    await this.members.start()
    this.gossip.start()
  }

  stop(): void {
    this.stopped = true
    this.evidence.stop()
    this.gossip.stop()
    this.entries.stop()
    this.rounds.stop()
  }

  /** The result of every entry this node applies. */
  private onBoardResult(result: ApplyResult): void {
    const { poolBoard } = this.options
    if (result.kind === 'genesis' && result.outcome === 'accepted' && poolBoard.genesis !== null)
      this.members.adoptGenesis(poolBoard.genesis)
    this.evidence.onBoardResult(result)
  }

  // ------------------------------------------------------------------------------------------
  // commands (daemon/pool/proposer.ts)

  async create(params: Parameters<PoolProposer['create']>[0]): Promise<CreateResult> {
    return await this.proposer.create(params)
  }

  async pay(params: Parameters<PoolProposer['pay']>[0]): Promise<PayResult> {
    return await this.proposer.pay(params)
  }

  async partition(params: Parameters<PoolProposer['partition']>[0]): Promise<PartitionResult> {
    return await this.proposer.partition(params)
  }

  async kick(params: Parameters<PoolProposer['kick']>[0]): Promise<KickResult> {
    return await this.proposer.kick(params)
  }

  async merge(params: Parameters<PoolProposer['merge']>[0]): Promise<Record<string, unknown>> {
    return await this.proposer.merge(params)
  }

  // ------------------------------------------------------------------------------------------
  // reading

  /**
   * The status after a linearizable read when `fresh`, so that a node that just came back shows
   * what the board holds now; `fresh` in the answer says whether that read succeeded.
   */
  async freshStatus(timeoutMs: number): Promise<PoolStatus & { fresh: boolean }> {
    let fresh = true
    try {
      await this.read(timeoutMs)
    } catch {
      fresh = false
    }
    return { ...this.status(), fresh }
  }

  /** Signatures this member gave that never reached the board, and what completes them (before-signing.ts). */
  async unfinished(): Promise<UnfinishedView[]> {
    const { poolBoard, memberKey } = this.options
    const home = homeOf(poolBoard, memberKey)
    const current = home === null ? undefined : poolBoard.currentState(home.view.ref)
    const next =
      current === undefined
        ? null
        : {
            pool: current.pool.ref,
            fromNumber: current.stateNumber,
            record: await this.signer.signedState(current.pool.ref, current.stateNumber)
          }
    return unfinished(poolBoard, memberKey, (k) => this.members.nameOf(k), await this.signer.signedStatements(), next)
  }

  status(): PoolStatus {
    const view = poolStatusView(this.options.poolBoard, (k) => this.members.nameOf(k))
    const key = toHex(this.options.memberKey)
    // The view placed every member of the genesis already; before the genesis, no one has a pool.
    const place = view.members.find((m) => m.key === key)
    return {
      ...view,
      me: { name: this.members.self.name, key, pool: place?.pool ?? null, poolLabel: place?.poolLabel ?? null },
      pending: this.rounds.pending(Date.now()),
      gossip: { ...this.gossip.stats(), topic: this.gossip.topic, subscribers: this.gossip.subscribers().length }
    }
  }

  evidenceList(): EvidenceView[] {
    return this.options.poolBoard.evidence().map((e) => ({
      id: toHex(e.id),
      member: this.members.nameOf(e.evidence.member),
      memberKey: toHex(e.evidence.member),
      index: e.index,
      source: e.source,
      first: this.summarize(e.evidence.first),
      second: this.summarize(e.evidence.second)
    }))
  }

  private summarize(s: PartitionStatement): StatementSummary {
    const id = statementId(s)
    const record = this.options.poolBoard.statement(id)
    return {
      statementId: toHex(id),
      parent: this.words.stateLabel(s.parent),
      actives: this.words.nameList(s.actives),
      balances: Object.fromEntries(s.actives.map((k, i) => [this.members.nameOf(k), s.newBalances[i]])),
      board: record === undefined ? null : { status: record.status, index: record.index }
    }
  }

  // ------------------------------------------------------------------------------------------

  private onGossip(msg: GossipMessage, from: string): void {
    if (this.stopped) return
    switch (msg.kind) {
      case 'genesis-proposal':
        this.responder.onGenesisProposal(msg.proposal, from)
        break
      case 'update-request':
        this.responder.onUpdateRequest(msg.request, from)
        break
      case 'partition-request':
        this.responder.onPartitionRequest(msg.request, from)
        break
      case 'merge-request':
        this.responder.onMergeRequest(msg.request, from)
        break
      case 'share':
        if (!this.rounds.onShare(msg.share, from)) break
        if (msg.share.kind === 'statement') this.evidence.watchShare(msg.share, from)
        break
      case 'refusal':
        this.rounds.onRefusal(msg.refusal, from)
        break
      case 'evidence':
        this.evidence.onGossipedEvidence(msg.evidence, from)
        break
    }
  }
}
