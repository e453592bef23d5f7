// The Raft core: a deterministic state machine with no clock, disk or network.
//
// Inputs: step(message), tick(), propose(), proposeConfChange(), readIndex(), transferLeadership(),
// compact(). Output: ready() hands out what to persist, send and apply; advance() acknowledges it.
// See types.ts (Ready) for the durability contract a driver must keep.
//
// Structure follows the Raft paper and thesis: one step function per role, becomeX() transitions,
// elections with pre-vote and check-quorum, pipelined replication with per-follower flow control,
// single-member configuration changes, leadership transfer, ReadIndex, snapshots. Methods that
// decide safety-critical questions are protected so tests can subclass the core to plant bugs.

import assert from 'node:assert/strict'
import { resolveConfig, type RaftConfig, type ResolvedRaftConfig } from './config.js'
import {
  applyConfEntry,
  checkConfiguration,
  decodeConfEntry,
  EMPTY_CONFIGURATION,
  encodeConfEntry,
  validateConfChange,
  type ConfChange
} from './confchange.js'
import { InconsistentStoreError, ProposalError } from './errors.js'
import { equalBytes } from '../../protocol/bytes.js'
import { computeEntryHash, HASH_BYTES, makeEntry, ZERO_HASH } from './hash.js'
import { RaftLog } from './log.js'
import { Progress, ProgressTracker, quorumSize } from './progress.js'
import { ReadQueue } from './reads.js'
import type {
  Alarm,
  AppMessage,
  ElectionCertificate,
  AppRespMessage,
  AckClaim,
  CommitCertificate,
  Configuration,
  Entry,
  EntryType,
  HardState,
  HeartbeatMessage,
  HeartbeatRespMessage,
  Message,
  NodeId,
  PeerStatus,
  PersistedState,
  ReadState,
  Ready,
  SignedAck,
  Role,
  SnapMessage,
  Snapshot,
  SnapshotMeta,
  SoftState,
  Status,
  VoteMessage,
  VoteRespMessage
} from './types.js'

export interface ProposeResult {
  readonly index: number
  readonly term: number
}

/**
 * The largest term or index the wire codec carries (board/wire.ts: varints up to 2^53-1). A message
 * at it is refused, so the core never computes a term or index past it (term + 1 for an election).
 */
export const MAX_TERM_OR_INDEX = Number.MAX_SAFE_INTEGER

/** Messages only a leader sends: they name the leader of their term. */
function isLeaderMessage(
  m: Message
): m is AppMessage | HeartbeatMessage | SnapMessage | (Message & { type: 'timeoutNow' }) {
  return m.type === 'app' || m.type === 'heartbeat' || m.type === 'snap' || m.type === 'timeoutNow'
}

/** Signed acknowledgements kept per member (leader) and checked signatures cached per voter (follower). */
const ACK_HISTORY = 16
const NO_SIGNATURE = new Uint8Array(0)

/** Largest read-index context accepted. */
export const MAX_READ_CONTEXT_BYTES = 256

/** A read-index context is 1..MAX_READ_CONTEXT_BYTES bytes. */
function isReadContext(context: Uint8Array): boolean {
  return context.length > 0 && context.length <= MAX_READ_CONTEXT_BYTES
}

type CampaignKind = 'preElection' | 'election' | 'transfer'

// Distributes Omit over the message union so each variant keeps its own fields.
type Outgoing = Message extends infer M
  ? M extends Message
    ? Omit<M, 'from' | 'term'> & { term?: number }
    : never
  : never

const EMPTY_SNAPSHOT: Snapshot = {
  meta: { index: 0, term: 0, hash: ZERO_HASH, configuration: EMPTY_CONFIGURATION },
  data: new Uint8Array(0)
}

/**
 * The persisted state of a founding member of a new cluster. Every founding member must be given
 * the same configuration: its log starts with one committed entry (index 1, term 1) that sets it,
 * identical on all of them, from which nodes that join later learn it too.
 */
export function bootstrapState(configuration: Configuration): PersistedState {
  const data = encodeConfEntry({ kind: 'initialize', configuration })
  if (configuration.voters.length === 0) throw new RangeError('the founding configuration needs at least one voter')
  return {
    hardState: { term: 1, vote: null, commit: 1 },
    snapshot: EMPTY_SNAPSHOT,
    entries: [makeEntry(ZERO_HASH, 1, 1, 'confChange', data)]
  }
}

/** The persisted state of a node that will be added to an existing cluster: it learns everything from the leader. */
export function joiningState(): PersistedState {
  return { hardState: { term: 0, vote: null, commit: 0 }, snapshot: EMPTY_SNAPSHOT, entries: [] }
}

export class Raft {
  readonly id: NodeId
  protected readonly cfg: ResolvedRaftConfig

  // Persistent (HardState) and volatile state of the paper.
  protected term: number
  protected vote: NodeId | null
  protected role: Role = 'follower'
  protected leader: NodeId | null = null
  /**
   * The member known to lead the current term. Unlike `leader`, never forgotten while the term
   * lasts: a term has at most one leader, so a leader's message in it from anyone else is refused.
   */
  protected termLeader: NodeId | null = null
  /** This leader's proof of its term (only when votes are signed). */
  protected certificate: ElectionCertificate | null = null
  /** Signed votes gathered by this candidate, by voter. */
  protected voteSignatures = new Map<NodeId, Uint8Array>()
  /** The entry this node acknowledged but its store lost (holdVotesUntil), until it has it again. */
  protected promised: { index: number; hash: Uint8Array } | null = null
  protected readonly log: RaftLog
  protected readonly tracker: ProgressTracker
  /**
   * With lying voters (faultyVoters > 0): acknowledgements are signed and what commits is proven
   * by them (commitByCertificate), never taken on the leader's word.
   */
  protected readonly certified: boolean
  /** The commit index known synced: what this node's signed acknowledgements promise never to truncate. */
  protected durableCommit: number
  /** Highest index of this node's log known to match the current term's leader (follower). */
  protected leaderMatch = 0
  /** Leader: each member's latest verified acknowledgements in this term, by rising index (at most ACK_HISTORY). */
  protected acks = new Map<NodeId, SignedAck[]>()
  /** Leader: its own signed acknowledgement, re-signed when what it says changes. */
  private selfAck: SignedAck | null = null
  /** Follower: acknowledgements whose signatures were checked, by voter (at most ACK_HISTORY each). */
  private verifiedAcks = new Map<NodeId, SignedAck[]>()

  protected electionElapsedTicks = 0
  protected heartbeatElapsedTicks = 0
  /** Ticks since the last heartbeat that included the learners (leader only). */
  protected learnerHeartbeatElapsedTicks = 0
  protected randomizedElectionTimeoutTicks: number

  /** Leadership transfer target, while a transfer is in progress. */
  protected leadTransferee: NodeId | null = null
  /** Payload bytes appended by this leader in its term and not yet committed. */
  protected uncommittedBytes = 0
  protected reads = new ReadQueue()
  /** Reads that arrived before this leader committed an entry of its term. */
  protected readsAwaitingCommit: { context: Uint8Array; from: NodeId | null }[] = []
  /** New entries to broadcast at the next ready() (batches proposals into one append per follower). */
  protected broadcastEntries = false
  /** The commit index advanced; tell followers at the next ready(). */
  protected broadcastCommit = false

  // Output waiting for the next Ready.
  protected msgs: Message[] = []
  protected readStates: ReadState[] = []
  protected alarms: Alarm[] = []
  private prevSoft: SoftState
  private prevHard: HardState
  private outstanding: Ready | null = null

  /**
   * @param persisted the state from stable storage (bootstrapState() for a founding member of a
   *   new cluster, joiningState() for a node about to be added). Validated; an inconsistent store
   *   throws InconsistentStoreError.
   */
  constructor(config: RaftConfig, persisted: PersistedState) {
    this.cfg = resolveConfig(config)
    this.id = this.cfg.id
    validatePersisted(persisted)
    const applied = persisted.applied ?? persisted.snapshot.meta.index
    try {
      this.log = new RaftLog(persisted.snapshot, persisted.entries, persisted.hardState.commit, applied)
    } catch (err) {
      throw new InconsistentStoreError(`log does not replay: ${(err as Error).message}`)
    }
    this.tracker = new ProgressTracker(this.log.configuration(), this.cfg.faultyVoters)
    this.certified = this.cfg.faultyVoters > 0
    this.durableCommit = persisted.hardState.commit
    // What was applied stays applied; anything beyond must be proven applicable again.
    if (this.certified) this.log.applicable = applied
    this.term = persisted.hardState.term
    this.vote = persisted.hardState.vote
    this.prevHard = persisted.hardState
    this.prevSoft = { role: 'follower', leader: null }
    this.randomizedElectionTimeoutTicks = this.cfg.electionTicks
    this.becomeFollower(this.term, null)
  }

  // ===========================================================================================
  // Public API

  /** Feeds a message from another node. Never throws on malformed or hostile remote input that is well-typed. */
  step(m: Message): void {
    assert.equal(m.to, this.id, `message for ${m.to} delivered to ${this.id}`)
    if (m.from === this.id || !wellFormed(m)) return
    // With lying voters, a node that never saw a term (a joiner) learns it from its leader's proven
    // message only: anyone else could give it any term, which it would carry to every member it
    // answers. Nothing else needs its answer before its leader has reached it.
    if (this.certified && this.term === 0 && !isLeaderMessage(m)) return
    const refusal = this.refusal(m)
    if (refusal !== null) {
      this.raiseAlarm({ kind: 'refused-message', from: m.from, term: m.term, type: m.type, reason: refusal })
      return
    }

    if (m.term > this.term) {
      if ((m.type === 'vote' || m.type === 'preVote') && !m.force && this.inLease()) {
        // A node that heard from a live leader within the election timeout ignores (pre-)votes, so a
        // node that rejoins after a partition cannot depose a healthy leader (thesis §4.2.3).
        return
      }
      if (m.type === 'preVote' || (m.type === 'preVoteResp' && !m.reject)) {
        // A pre-vote never changes terms: requests carry the candidate's future term, and a granted
        // response echoes it.
      } else {
        this.onHigherTerm(m)
      }
    } else if (m.term < this.term) {
      this.onLowerTerm(m)
      return
    }

    if (m.type === 'vote' || m.type === 'preVote') {
      this.handleVoteRequest(m)
      return
    }
    switch (this.role) {
      case 'follower':
        this.stepFollower(m)
        break
      case 'preCandidate':
      case 'candidate':
        this.stepCandidate(m)
        break
      case 'leader':
        this.stepLeader(m)
        break
    }
  }

  /**
   * The driver found that the store lost entries this node had acknowledged, up to `index` (whose
   * hash was `hash`). Such a node may have counted toward a commit it no longer holds: until its
   * log holds that entry again, or its commit index reaches it (caught up from the leader), it
   * neither grants votes nor campaigns, so it cannot help elect a leader that lacks what it acked.
   */
  holdVotesUntil(index: number, hash: Uint8Array): void {
    assert(isIndex(index) && hash.length === HASH_BYTES, 'holdVotesUntil: bad index or hash')
    this.promised = { index, hash }
  }

  /** True once the log holds again everything this node acknowledged before it lost writes. */
  keptPromises(): boolean {
    const p = this.promised
    if (p === null) return true
    const hash = this.log.hash(p.index)
    if (this.log.committed < p.index && (hash === null || !equalBytes(hash, p.hash))) return false
    this.promised = null
    return true
  }

  /** Advances the logical clock by one tick. */
  tick(): void {
    if (this.role === 'leader') this.tickLeader()
    else this.tickElection()
  }

  /** Appends a normal entry on the leader. Throws ProposalError when refused. */
  propose(data: Uint8Array): ProposeResult {
    this.checkCanPropose(data.length)
    const e = this.appendAsLeader('normal', data)
    return { index: e.index, term: e.term }
  }

  /** Appends a configuration change on the leader; it takes effect at once. Throws ProposalError when refused. */
  proposeConfChange(cc: ConfChange): ProposeResult {
    const data = encodeConfEntry(cc)
    this.checkCanPropose(data.length)
    if (!this.committedEntryInCurrentTerm()) {
      // A new leader may hold an uncommitted change of a previous leader in its log; changing again
      // before committing its own term could make two disjoint majorities (raft-dev, 2015).
      throw new ProposalError('leader-not-ready', 'the leader has not yet committed an entry of its term')
    }
    if (this.log.lastConfIndex() > this.log.committed) {
      throw new ProposalError(
        'conf-change-pending',
        `the configuration change at index ${this.log.lastConfIndex()} is not committed yet`
      )
    }
    const problem = validateConfChange(this.log.configuration(), cc)
    if (problem !== null) throw new ProposalError('invalid-conf-change', `${cc.kind}(${cc.node}): ${problem}`)
    const e = this.appendAsLeader('confChange', data)
    return { index: e.index, term: e.term }
  }

  /**
   * Requests a linearizable read point. A ReadState with the same context appears in a later Ready
   * (on this node) once leadership is confirmed; the read may be served when applied >= its index.
   * Requests may be lost (leader change, message loss): retry with a new context after a timeout.
   */
  readIndex(context: Uint8Array): void {
    if (!isReadContext(context)) {
      throw new RangeError(`read context must be 1..${MAX_READ_CONTEXT_BYTES} bytes, got ${context.length}`)
    }
    if (this.role === 'leader') {
      this.handleReadIndex(context, null)
    } else if (this.leader !== null) {
      this.send({ type: 'readIndex', to: this.leader, context })
    } else {
      throw new ProposalError('not-leader', 'no leader known', null)
    }
  }

  /** Asks the leader to hand leadership to `to` (a voter). Forwarded when called on a follower. */
  transferLeadership(to: NodeId): void {
    if (this.role === 'leader') {
      this.handleTransferLeader(to, true)
    } else if (this.leader !== null) {
      this.send({ type: 'transferLeader', to: this.leader, target: to })
    } else {
      throw new ProposalError('not-leader', 'no leader known', null)
    }
  }

  /**
   * The application has snapshotted its state at `index` (<= applied): record the snapshot and drop
   * the log up to it. Returns the snapshot metadata the driver must persist with `data` (in one
   * batch that also deletes the stored entries <= index), or null if already compacted that far.
   */
  compact(index: number, data: Uint8Array): SnapshotMeta | null {
    if (index > this.log.applied) {
      throw new RangeError(`cannot compact at ${index}: only ${this.log.applied} is applied`)
    }
    return this.log.compact(index, data)
  }

  hasReady(): boolean {
    if (this.outstanding !== null) return false
    return (
      this.msgs.length > 0 ||
      (this.role === 'leader' && (this.broadcastEntries || this.broadcastCommit)) ||
      this.log.hasUnstableEntries() ||
      this.log.pendingSnapshot !== null ||
      this.log.hasCommittedToApply() ||
      this.readStates.length > 0 ||
      this.alarms.length > 0 ||
      this.softStateChanged() ||
      this.hardStateChanged()
    )
  }

  ready(): Ready {
    assert(this.outstanding === null, 'ready() called again before advance()')
    this.flushBroadcast()
    const softState = this.softStateChanged() ? { role: this.role, leader: this.leader } : null
    const hardState = this.hardStateChanged() ? this.hardState() : null
    const snapshot = this.log.pendingSnapshot
    this.log.pendingSnapshot = null
    const entries = this.log.takeUnstableEntries()
    const committedEntries = snapshot === null ? this.log.takeCommittedToApply(this.cfg.maxCommittedBytesPerReady) : []
    const rd: Ready = {
      softState,
      hardState,
      entries,
      snapshot,
      messages: this.certified ? this.signAcks(this.msgs) : this.msgs,
      committedEntries,
      readStates: this.readStates,
      alarms: this.alarms,
      ...(this.certified && hardState !== null && hardState.commit !== this.prevHard.commit ? { syncCommit: true } : {})
    }
    if (softState !== null) this.prevSoft = softState
    if (hardState !== null) this.prevHard = hardState
    this.msgs = []
    this.readStates = []
    this.alarms = []
    this.outstanding = rd
    return rd
  }

  /** Acknowledges that `rd` was persisted, sent and applied as the contract in types.ts says. */
  advance(rd: Ready): void {
    assert(rd === this.outstanding, 'advance() must receive the Ready returned by the last ready()')
    this.outstanding = null
    if (rd.snapshot !== null) {
      this.log.applied = Math.max(this.log.applied, rd.snapshot.meta.index)
      this.log.markPersisted(rd.snapshot.meta.index, rd.snapshot.meta.hash)
    }
    const n = rd.committedEntries.length
    if (n > 0) this.log.applied = Math.max(this.log.applied, rd.committedEntries[n - 1]!.index)
    if (this.certified && rd.hardState !== null && rd.hardState.commit > this.durableCommit) {
      // The commit index is synced (Ready.syncCommit): promise it to the leader, so that what a
      // quorum holds committed can be applied.
      this.durableCommit = rd.hardState.commit
      const leader = this.termLeader
      if (this.role !== 'leader' && leader !== null && leader !== this.id && this.tracker.isVoter(this.id)) {
        this.sendAccept(leader, Math.max(this.leaderMatch, this.log.committed))
      }
    }
    if (this.certified && this.role === 'leader') {
      this.recordSelfAck()
      if (this.maybeCommit()) this.afterLeaderCommit()
    }
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1]!
      this.log.markPersisted(last.index, last.hash)
      // The leader's own copy counts toward a quorum only once it is durable, so a driver may
      // send the leader's appends while its own write is still in progress (thesis §10.2.1).
      if (this.role === 'leader' && this.tracker.progress.get(this.id)?.maybeUpdate(this.log.persistedIndex) === true) {
        if (this.maybeCommit()) this.afterLeaderCommit()
      }
    }
  }

  status(): Status {
    let progress: Record<NodeId, PeerStatus> | null = null
    if (this.role === 'leader') {
      progress = {}
      for (const [id, pr] of this.tracker.progress) progress[id] = pr.toStatus()
    }
    return {
      id: this.id,
      term: this.term,
      vote: this.vote,
      role: this.role,
      leader: this.leader,
      commit: this.log.committed,
      applied: this.log.applied,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      snapshotIndex: this.log.snapshotMeta().index,
      configuration: this.log.configuration(),
      leadTransferee: this.leadTransferee,
      progress
    }
  }

  // Cheap read-only accessors (no allocation), for drivers and the simulator.
  get currentTerm(): number {
    return this.term
  }
  get currentRole(): Role {
    return this.role
  }
  get leaderId(): NodeId | null {
    return this.leader
  }
  get commitIndex(): number {
    return this.log.committed
  }
  get lastIndex(): number {
    return this.log.lastIndex()
  }
  /** The entry at index, if it is in the log after the snapshot. */
  entryAt(index: number): Entry | undefined {
    return this.log.entry(index)
  }
  /** Term and hash at index (including the snapshot's last index), or null if unknown. */
  termAt(index: number): number | null {
    return this.log.term(index)
  }
  hashAt(index: number): Uint8Array | null {
    return this.log.hash(index)
  }
  snapshotMeta(): SnapshotMeta {
    return this.log.snapshotMeta()
  }
  configuration(): Configuration {
    return this.log.configuration()
  }

  // ===========================================================================================
  // Term handling and role transitions

  /**
   * Why a message must be refused before it changes anything, or null. Raft believes every term it
   * is told; a member that lies could then stop the board with one message (a term at the codec's
   * limit) or make itself leader by saying so. Refused: terms and indexes at the codec's limit;
   * a leader's message in a term another member leads; without a proof (election certificate,
   * when votes are signed), a leader's message for a term whose leader this node does not know;
   * any other term too far above ours.
   */
  protected refusal(m: Message): string | null {
    if (m.term >= MAX_TERM_OR_INDEX) return `term ${m.term} is at the largest term the wire carries`
    if (m.type === 'app' && m.prevIndex + m.entries.length >= MAX_TERM_OR_INDEX) {
      return `indexes up to ${m.prevIndex + m.entries.length} reach the largest index the wire carries`
    }
    if (isLeaderMessage(m) && m.term >= this.term) {
      if (m.term === this.term && this.termLeader !== null) {
        return m.from === this.termLeader ? null : `${m.type} in term ${m.term}, which ${this.termLeader} leads`
      }
      if (this.cfg.votes !== null && (this.tracker.config.voters.length > 0 || this.certified))
        return this.checkCertificate(m)
    }
    if (this.term > 0 && m.term > this.term + this.cfg.maxTermAdvance) {
      return `term ${m.term} is more than ${this.cfg.maxTermAdvance} above this node's term ${this.term}`
    }
    return null
  }

  /**
   * Does the message carry a quorum of signed votes for its sender in its term, from the voters it
   * was elected by? A lone member signs one vote, so it cannot make one (unless it is the only
   * voter, which only a configuration of one voter, ours too, allows). The voters need not be ours:
   * a lagging follower, or one holding an uncommitted change, has another configuration.
   */
  protected checkCertificate(m: Message & { certificate?: ElectionCertificate }): string | null {
    const votes = this.cfg.votes!
    const c = m.certificate
    if (c === undefined) return `${m.type} in term ${m.term} without an election certificate`
    if (c.term !== m.term || c.leader !== m.from) return `the certificate is for ${c.leader} in term ${c.term}`
    const claimed = new Set(c.voters)
    if (claimed.size !== c.voters.length) return 'the certificate names a voter twice'
    const ours = this.tracker.config.voters
    if (claimed.size < 2 && !(ours.length === 1 && ours[0] === c.leader && claimed.has(c.leader))) {
      return 'the certificate is signed by its leader alone'
    }
    const needed = quorumSize(claimed.size, this.cfg.faultyVoters)
    const counted = new Set<NodeId>()
    for (const v of c.votes) {
      if (counted.has(v.voter) || !claimed.has(v.voter)) continue
      if (!votes.verify(v.voter, c.term, c.leader, v.signature))
        return `the certificate holds a bad signature of ${v.voter}`
      counted.add(v.voter)
      if (counted.size >= needed) return null
    }
    return `the certificate holds ${counted.size} valid votes of the ${needed} needed`
  }

  /** A message from a higher term: that term has started, so step down (§5.1). */
  protected onHigherTerm(m: Message): void {
    const fromLeader = m.type === 'app' || m.type === 'heartbeat' || m.type === 'snap'
    this.becomeFollower(m.term, fromLeader ? m.from : null)
  }

  /** A message from a lower term is stale; some still deserve an answer. */
  protected onLowerTerm(m: Message): void {
    if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === 'app' || m.type === 'heartbeat')) {
      // The sender believes it leads an older term. With pre-vote and leases our higher term may
      // never reach it through votes, so tell it directly; it steps down and the cluster moves on.
      this.send({ type: 'appResp', to: m.from, index: 0, reject: true, hintIndex: 0, hintTerm: 0 })
    } else if (m.type === 'preVote') {
      // Tell the pre-candidate about our term, or it may pre-vote forever below it.
      this.send({ type: 'preVoteResp', to: m.from, reject: true })
    }
  }

  protected inLease(): boolean {
    return this.cfg.checkQuorum && this.leader !== null && this.electionElapsedTicks < this.cfg.electionTicks
  }

  protected reset(term: number): void {
    if (term !== this.term) {
      assert(term > this.term, `term went backwards (${this.term} -> ${term})`)
      assert(term < MAX_TERM_OR_INDEX, `term ${term} at the wire's limit`)
      this.term = term
      this.vote = null
      this.termLeader = null
      this.certificate = null
      this.leaderMatch = 0
      this.verifiedAcks.clear()
    }
    this.acks.clear()
    this.selfAck = null
    this.leader = null
    this.electionElapsedTicks = 0
    this.heartbeatElapsedTicks = 0
    this.learnerHeartbeatElapsedTicks = 0
    this.resetRandomizedElectionTimeout()
    this.leadTransferee = null
    this.tracker.resetVotes()
    this.tracker.progress.clear()
    this.uncommittedBytes = 0
    this.reads = new ReadQueue()
    this.readsAwaitingCommit = []
    this.broadcastEntries = false
    this.broadcastCommit = false
  }

  protected resetRandomizedElectionTimeout(): void {
    // Random in [electionTicks, 2 * electionTicks) so that candidates rarely collide (§5.2).
    const r = this.cfg.rand(this.cfg.electionTicks)
    assert(Number.isInteger(r) && r >= 0 && r < this.cfg.electionTicks, `rand(${this.cfg.electionTicks}) returned ${r}`)
    this.randomizedElectionTimeoutTicks = this.cfg.electionTicks + r
  }

  protected becomeFollower(term: number, leader: NodeId | null): void {
    this.reset(term)
    this.role = 'follower'
    this.leader = leader
    if (leader !== null) this.termLeader = leader
  }

  protected becomePreCandidate(): void {
    assert(this.role !== 'leader', 'invalid transition leader -> preCandidate')
    // A pre-candidate changes neither term nor vote: it only asks whether it could win.
    this.tracker.resetVotes()
    this.role = 'preCandidate'
    this.leader = null
    this.resetRandomizedElectionTimeout()
  }

  protected becomeCandidate(): void {
    assert(this.role !== 'leader', 'invalid transition leader -> candidate')
    this.reset(this.term + 1)
    this.vote = this.id
    this.role = 'candidate'
  }

  protected becomeLeader(): void {
    assert(this.role === 'candidate', `invalid transition ${this.role} -> leader`)
    this.reset(this.term)
    this.role = 'leader'
    this.leader = this.id
    this.termLeader = this.id
    if (this.cfg.votes !== null) {
      const votes = [...this.voteSignatures].map(([voter, signature]) => ({ voter, signature }))
      this.certificate = { term: this.term, leader: this.id, voters: this.tracker.config.voters, votes }
    }
    // reset() emptied the progress map: this builds every member's progress afresh, the leader's own
    // in replicate state with match at its durable index.
    this.syncProgressWithConfiguration()
    if (this.certified) this.recordSelfAck()
    // An entry of the new term: committing it commits everything before it (§5.4.2) and lets
    // ReadIndex and configuration changes proceed.
    this.appendAsLeader('normal', new Uint8Array(0))
  }

  // ===========================================================================================
  // Elections

  protected tickElection(): void {
    this.electionElapsedTicks++
    if (this.role === 'follower' && this.leader !== null && this.electionElapsedTicks >= this.cfg.electionTicks) {
      // Forget a leader we no longer hear from: we then grant (pre-)votes again, so the cluster
      // can elect even if some nodes still hear the old leader (avoids the PreVote+CheckQuorum
      // deadlock, etcd issues 8243/9586/10355).
      this.leader = null
    }
    if (this.promotable() && this.electionElapsedTicks >= this.randomizedElectionTimeoutTicks) {
      this.electionElapsedTicks = 0
      this.hup()
    }
  }

  /** True if this node may campaign: it is a voter and is not installing a snapshot. */
  protected promotable(): boolean {
    return this.tracker.isVoter(this.id) && this.log.pendingSnapshot === null && this.keptPromises()
  }

  /** Starts an election; the caller (tickElection) has checked that this node is a promotable non-leader. */
  protected hup(): void {
    this.campaign(this.cfg.preVote ? 'preElection' : 'election')
  }

  protected campaign(kind: CampaignKind): void {
    let voteTerm: number
    let type: 'vote' | 'preVote'
    if (kind === 'preElection') {
      this.becomePreCandidate()
      voteTerm = this.term + 1
      type = 'preVote'
    } else {
      this.becomeCandidate()
      voteTerm = this.term
      type = 'vote'
    }
    this.tracker.recordVote(this.id, true)
    this.voteSignatures.clear()
    if (kind !== 'preElection' && this.cfg.votes !== null)
      this.voteSignatures.set(this.id, this.cfg.votes.sign(this.term, this.id))
    if (this.tracker.tallyVotes() === 'won') {
      // Single voter.
      if (kind === 'preElection') this.campaign('election')
      else this.becomeLeader()
      return
    }
    const lastIndex = this.log.lastIndex()
    const lastTerm = this.log.lastTerm()
    const commitHash = this.certified ? this.log.hash(this.durableCommit) : null
    const commit = commitHash !== null ? { commit: { index: this.durableCommit, hash: commitHash } } : {}
    for (const v of this.tracker.config.voters) {
      if (v === this.id) continue
      this.send({ type, to: v, term: voteTerm, lastIndex, lastTerm, force: kind === 'transfer', ...commit })
    }
  }

  /** Election restriction (§5.4.1): grant only to a candidate whose log is at least as up-to-date. */
  protected candidateLogOk(m: VoteMessage): boolean {
    if (this.log.isUpToDate(m.lastIndex, m.lastTerm)) return true
    // With lying voters: our log holds another entry where the candidate holds one committed.
    // Only a leader that lied can have given it to us (a later honest leader holds the committed
    // one), so the terms after it prove nothing. A false claim wins a liar no more than lying
    // about its last term would.
    const c = this.certified ? m.commit : undefined
    if (c === undefined || !isIndex(c.index) || !isBytes(c.hash) || c.index <= this.log.committed) return false
    const local = this.log.hash(c.index)
    return local !== null && !equalBytes(local, c.hash)
  }

  protected handleVoteRequest(m: VoteMessage): void {
    // Every node answers, learners included: a learner promoted in a log it has not received yet
    // may be needed to form the quorum the candidate counts on.
    const canVote =
      this.vote === m.from ||
      (this.vote === null && this.leader === null) ||
      (m.type === 'preVote' && m.term > this.term)
    const respType = m.type === 'vote' ? 'voteResp' : 'preVoteResp'
    if (canVote && this.candidateLogOk(m) && this.keptPromises()) {
      // Answer with the request's term: a granted pre-vote must match the pre-candidate's future term.
      // A vote is signed, so the candidate can prove it won (the election certificate).
      const lock = this.certified ? this.lockClaim(m.term) : undefined
      if (m.type === 'vote' && this.cfg.votes !== null) {
        this.send({
          type: respType,
          to: m.from,
          term: m.term,
          reject: false,
          signature: this.cfg.votes.sign(m.term, m.from),
          ...(lock !== undefined ? { ack: lock } : {})
        })
      } else {
        this.send({
          type: respType,
          to: m.from,
          term: m.term,
          reject: false,
          ...(lock !== undefined ? { ack: lock } : {})
        })
      }
      if (m.type === 'vote') {
        this.electionElapsedTicks = 0
        this.vote = m.from
      }
    } else {
      this.send({ type: respType, to: m.from, reject: true })
    }
  }

  /** This node's durable commit index and its hash, signed: what a grant tells a candidate it must hold. */
  protected lockClaim(term: number): { hash: Uint8Array; locked: number; signature: Uint8Array } | undefined {
    const index = this.durableCommit
    const hash = this.log.hash(index)
    if (hash === null) return undefined
    const signature = this.cfg.votes!.signAck!({ term, index, hash, locked: index })
    return { hash, locked: index, signature }
  }

  /** Does this log hold the entry `index` with `hash` (or has it compacted past it, all applied)? */
  protected holdsEntry(index: number, hash: Uint8Array): boolean {
    if (index <= this.log.snapshotMeta().index) return true
    const local = this.log.hash(index)
    return local !== null && equalBytes(local, hash)
  }

  protected handleVoteResponse(m: VoteRespMessage): void {
    const expected = this.role === 'preCandidate' ? 'preVoteResp' : 'voteResp'
    if (m.type !== expected) return
    // A grant from an earlier pre-vote round at a lower term does not count.
    if (m.type === 'preVoteResp' && !m.reject && m.term !== this.term + 1) return
    if (this.certified && !m.reject && m.ack !== undefined && !this.holdsEntry(m.ack.locked, m.ack.hash)) {
      // The voter holds committed an entry our log lacks: a leader must hold every committed entry
      // (§5.4.1). Plain Raft's comparison of last terms cannot see this when a lying leader gave
      // different members different entries at one index and term.
      this.tracker.recordVote(m.from, false)
      if (this.tracker.tallyVotes() === 'lost') this.becomeFollower(this.term, null)
      return
    }
    if (m.type === 'voteResp' && !m.reject && this.cfg.votes !== null) {
      // Only a vote the candidate can show counts: it goes into the certificate.
      if (m.signature === undefined || !this.cfg.votes.verify(m.from, this.term, this.id, m.signature)) {
        this.raiseAlarm({
          kind: 'refused-message',
          from: m.from,
          term: m.term,
          type: m.type,
          reason: 'a granted vote without a valid signature'
        })
        return
      }
      this.voteSignatures.set(m.from, m.signature)
    }
    this.tracker.recordVote(m.from, !m.reject)
    const result = this.tracker.tallyVotes()
    if (result === 'won') {
      if (this.role === 'preCandidate') this.campaign('election')
      else this.becomeLeader()
    } else if (result === 'lost') {
      this.becomeFollower(this.term, null)
    }
  }

  // ===========================================================================================
  // Per-role step functions

  protected stepFollower(m: Message): void {
    switch (m.type) {
      case 'app':
        this.electionElapsedTicks = 0
        this.leader = this.termLeader = m.from
        this.handleAppendEntries(m)
        break
      case 'heartbeat':
        this.electionElapsedTicks = 0
        this.leader = this.termLeader = m.from
        this.handleHeartbeat(m)
        break
      case 'snap':
        this.electionElapsedTicks = 0
        this.leader = this.termLeader = m.from
        // With lying voters nothing is committed on a leader's word: the driver steps a snapshot's
        // history as an append, which commits by certificate like any other.
        if (!this.certified) this.handleSnapshot(m)
        break
      case 'timeoutNow':
        // The leader hands over: campaign at once, skipping pre-vote and leases.
        if (this.promotable()) this.campaign('transfer')
        break
      case 'readIndexResp':
        // Only the term's leader answers reads: anyone else's index could be stale.
        if (m.from === this.termLeader) this.readStates.push({ index: m.index, context: m.context })
        break
      default:
        break
    }
  }

  protected stepCandidate(m: Message): void {
    switch (m.type) {
      case 'app':
      case 'heartbeat':
      case 'snap':
        // A leader of our term (or a higher one) exists: follow it and handle the message as a follower.
        this.becomeFollower(m.term, m.from)
        this.stepFollower(m)
        break
      case 'voteResp':
      case 'preVoteResp':
        this.handleVoteResponse(m)
        break
      default:
        break
    }
  }

  protected stepLeader(m: Message): void {
    switch (m.type) {
      case 'appResp':
        this.handleAppendResponse(m)
        break
      case 'heartbeatResp':
        this.handleHeartbeatResponse(m)
        break
      case 'readIndex':
        if (!isReadContext(m.context)) return
        try {
          this.handleReadIndex(m.context, m.from)
        } catch (err) {
          if (!(err instanceof ProposalError)) throw err // queue full: the follower retries
        }
        break
      case 'transferLeader':
        this.handleTransferLeader(m.target, false)
        break
      default:
        break
    }
  }

  // ===========================================================================================
  // Leader: proposals, replication, commit

  protected tickLeader(): void {
    this.heartbeatElapsedTicks++
    this.learnerHeartbeatElapsedTicks++
    this.electionElapsedTicks++
    if (this.electionElapsedTicks >= this.cfg.electionTicks) {
      this.electionElapsedTicks = 0
      if (this.cfg.checkQuorum) {
        if (!this.tracker.quorumActive(this.id)) {
          // Cut off from a quorum: step down so clients go elsewhere and stale reads are impossible.
          this.becomeFollower(this.term, null)
          return
        }
        for (const [id, pr] of this.tracker.progress) if (id !== this.id) pr.recentActive = false
      }
      // A transfer that has not completed within an election timeout is abandoned.
      if (this.leadTransferee !== null) this.leadTransferee = null
    }
    for (const [id, pr] of this.tracker.progress) {
      if (pr.state === 'snapshot' && ++pr.snapshotElapsedTicks >= this.cfg.snapshotTimeoutTicks) {
        // No acknowledgement: the snapshot or its answer may be lost. Probe again.
        pr.becomeProbe()
        this.sendAppend(id)
      }
    }
    if (this.heartbeatElapsedTicks >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsedTicks = 0
      const learnersToo = this.learnerHeartbeatElapsedTicks >= this.cfg.learnerHeartbeatTicks
      if (learnersToo) this.learnerHeartbeatElapsedTicks = 0
      this.bcastHeartbeat(this.reads.lastContext(), learnersToo)
    }
  }

  protected checkCanPropose(payloadBytes: number): void {
    if (this.role !== 'leader') {
      throw new ProposalError(
        'not-leader',
        this.leader === null ? 'not the leader; no leader known' : `not the leader; the leader is ${this.leader}`,
        this.leader
      )
    }
    if (!this.tracker.isVoter(this.id)) {
      throw new ProposalError('leader-removed', 'the leader is leaving the configuration', null)
    }
    if (this.leadTransferee !== null) {
      throw new ProposalError('transferring', `leadership is being transferred to ${this.leadTransferee}`, null)
    }
    if (payloadBytes > this.cfg.maxEntryBytes) {
      throw new ProposalError(
        'entry-too-large',
        `payload of ${payloadBytes} bytes exceeds maxEntryBytes ${this.cfg.maxEntryBytes}`
      )
    }
    if (this.uncommittedBytes > 0 && this.uncommittedBytes + payloadBytes > this.cfg.maxUncommittedBytes) {
      throw new ProposalError(
        'too-many-uncommitted-bytes',
        `${this.uncommittedBytes} uncommitted bytes; limit maxUncommittedBytes ${this.cfg.maxUncommittedBytes}`
      )
    }
  }

  protected appendAsLeader(type: EntryType, data: Uint8Array): Entry {
    assert(this.log.lastIndex() + 1 < MAX_TERM_OR_INDEX, 'the log reached the largest index the wire carries')
    const e = makeEntry(this.log.lastHash(), this.log.lastIndex() + 1, this.term, type, data)
    this.log.append([e])
    this.uncommittedBytes += data.length
    this.syncProgressWithConfiguration()
    // The leader's own copy counts toward the quorum once durable (see advance()).
    this.broadcastEntries = true
    if (this.maybeCommit()) this.afterLeaderCommit()
    return e
  }

  protected committedEntryInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.term
  }

  /**
   * Advances the commit index to the highest index stored on a quorum of voters, but only if that
   * entry is of the current term: entries of earlier terms are committed indirectly (§5.4.2,
   * Figure 8).
   */
  protected maybeCommit(): boolean {
    if (this.certified) return this.commitByCertificate(this.leaderAcks())
    const index = this.tracker.quorumMatchIndex()
    if (index <= this.log.committed || this.log.term(index) !== this.term) return false
    this.commitTo(index)
    return true
  }

  protected commitTo(index: number): void {
    const old = this.log.committed
    this.log.commitTo(index)
    if (this.role === 'leader' && index > old) {
      this.uncommittedBytes = Math.max(0, this.uncommittedBytes - this.log.payloadBytesOfTerm(old, index, this.term))
    }
  }

  protected afterLeaderCommit(): void {
    this.broadcastCommit = true
    if (this.committedEntryInCurrentTerm() && this.readsAwaitingCommit.length > 0) {
      const waiting = this.readsAwaitingCommit
      this.readsAwaitingCommit = []
      for (const r of waiting) this.queueRead(r.context, r.from)
    }
    if (!this.tracker.isVoter(this.id) && this.log.lastConfIndex() <= this.log.committed) {
      this.stepDownRemoved()
    }
  }

  /** The change removing (or demoting) this leader is committed: hand over and step down. */
  protected stepDownRemoved(): void {
    const last = this.log.lastIndex()
    for (const v of this.tracker.config.voters) {
      if (this.tracker.progress.get(v)?.match === last) {
        // Spares the cluster an election timeout.
        this.send({ type: 'timeoutNow', to: v })
        break
      }
    }
    this.becomeFollower(this.term, null)
  }

  /** Adds and removes progress entries so they match the configuration (leader only). */
  protected syncProgressWithConfiguration(): void {
    const config = this.log.configuration()
    if (config === this.tracker.config && (this.role !== 'leader' || this.tracker.progress.size > 0)) return
    this.tracker.config = config
    if (this.role !== 'leader') return
    const members = new Set([...config.voters, ...config.learners])
    for (const id of [...this.tracker.progress.keys()]) {
      if (!members.has(id)) {
        this.tracker.progress.delete(id)
        if (this.leadTransferee === id) this.leadTransferee = null
      }
    }
    const next = this.log.lastIndex() + 1
    for (const id of members) {
      const isLearner = config.learners.includes(id)
      const pr = this.tracker.progress.get(id)
      if (pr === undefined || pr.isLearner !== isLearner) {
        const fresh = new Progress(pr?.next ?? next, isLearner, this.cfg.maxInflightMsgs, this.cfg.maxInflightBytes)
        fresh.match = pr?.match ?? 0
        // A new member gets a full election timeout before check-quorum holds its silence against us.
        fresh.recentActive = true
        if (id === this.id) {
          fresh.match = this.log.persistedIndex
          fresh.becomeReplicate()
          fresh.next = this.log.lastIndex() + 1
        }
        this.tracker.progress.set(id, fresh)
      }
    }
  }

  protected flushBroadcast(): void {
    if (this.role === 'leader' && (this.broadcastEntries || this.broadcastCommit)) {
      const sendIfEmpty = this.broadcastCommit
      for (const id of this.tracker.progress.keys()) {
        if (id === this.id) continue
        // Fill the pipeline; an empty append carries a new commit index.
        if (this.maybeSendAppend(id, sendIfEmpty)) while (this.maybeSendAppend(id, false));
      }
    }
    this.broadcastEntries = false
    this.broadcastCommit = false
  }

  protected sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true)
  }

  /**
   * Sends the next batch of entries to `to` if its flow control allows, or a snapshot if the
   * entries it needs are compacted away. Returns true if a message was sent.
   */
  protected maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.tracker.progress.get(to)
    if (pr === undefined || pr.isPaused()) return false
    const prevIndex = pr.next - 1
    const prevTerm = this.log.term(prevIndex)
    if (prevTerm === null) return this.sendSnapshot(to, pr)
    const { entries, bytes } = this.log.sliceBytes(pr.next, this.log.lastIndex(), this.cfg.maxMessageBytes)
    if (entries.length === 0 && !sendIfEmpty) return false
    this.send({
      type: 'app',
      to,
      prevIndex,
      prevTerm,
      prevHash: this.log.hash(prevIndex)!,
      entries,
      commit: this.log.committed,
      ...(this.certified ? { commitCertificate: this.commitCertificateFor(prevIndex + entries.length) } : {})
    })
    pr.sentEntries(entries.length, bytes)
    return true
  }

  protected sendSnapshot(to: NodeId, pr: Progress): boolean {
    // Do not push a snapshot at a node that may be down; a heartbeat response will retry.
    if (!pr.recentActive) return false
    const snapshot = this.log.snapshot()
    this.send({
      type: 'snap',
      to,
      snapshot,
      ...(this.certified ? { commitCertificate: this.commitCertificateFor(snapshot.meta.index) } : {})
    })
    pr.becomeSnapshot(snapshot.meta.index)
    return true
  }

  /** Heartbeats every voter, and the learners too if `learnersToo` (a read's quorum is of voters only). */
  protected bcastHeartbeat(context: Uint8Array | null, learnersToo: boolean): void {
    for (const [id, pr] of this.tracker.progress) {
      if (id === this.id || (pr.isLearner && !learnersToo)) continue
      // Never tell a follower to commit beyond what it is known to hold.
      const commit = Math.min(pr.match, this.log.committed)
      this.send({
        type: 'heartbeat',
        to: id,
        commit,
        context,
        ...(this.certified ? { commitCertificate: this.commitCertificateFor(Math.max(commit, pr.match)) } : {})
      })
    }
  }

  protected handleAppendResponse(m: AppRespMessage): void {
    const pr = this.tracker.progress.get(m.from)
    if (pr === undefined) return
    pr.recentActive = true
    if (m.reject) {
      if (m.index <= pr.match && m.hintIndex < pr.match) {
        // The follower lacks entries it acknowledged (its store lost writes; or the answer is old):
        // resend from the end of its log. Lowering match never lowers the commit index.
        pr.forgetMatch(m.hintIndex)
        this.sendAppend(m.from)
        return
      }
      let hint = m.hintIndex
      if (m.hintTerm > 0) hint = this.log.findConflictByTerm(m.hintIndex, m.hintTerm).index
      if (pr.maybeDecrTo(m.index, hint)) {
        if (pr.state === 'replicate') pr.becomeProbe()
        this.sendAppend(m.from)
      }
      return
    }
    if (m.index > this.log.lastIndex()) return // acknowledges entries we never had: not from our term
    if (this.certified) this.recordAck(m)
    const wasPaused = pr.isPaused()
    if (pr.maybeUpdate(m.index) || (pr.match === m.index && pr.state === 'probe')) {
      if (pr.state === 'probe') {
        pr.becomeReplicate()
      } else if (pr.state === 'snapshot' && pr.match + 1 >= this.log.firstIndex()) {
        // The follower caught up through the snapshot (or already had what it covers).
        pr.becomeReplicate()
      } else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) {
        // It installed the snapshot we sent, but we have compacted past it since: send the
        // newer one now rather than after snapshotTimeoutTicks.
        pr.becomeProbe()
      } else if (pr.state === 'replicate') {
        pr.inflights.freeLE(m.index)
      }
      if (this.maybeCommit()) this.afterLeaderCommit()
      if (this.role !== 'leader') return
      if (wasPaused) this.sendAppend(m.from)
      while (this.maybeSendAppend(m.from, false));
      if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
        this.send({ type: 'timeoutNow', to: m.from })
      }
    }
  }

  protected handleHeartbeatResponse(m: HeartbeatRespMessage): void {
    const pr = this.tracker.progress.get(m.from)
    if (pr === undefined) return
    pr.recentActive = true
    pr.probeSent = false
    if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirstOne()
    if (pr.match < this.log.lastIndex() || pr.state === 'probe') this.sendAppend(m.from)
    if (m.context !== null) this.recordReadAck(m.from, m.context)
  }

  // ===========================================================================================
  // Follower: appends, heartbeats, snapshots

  protected raiseAlarm(a: Alarm): void {
    this.alarms.push(a)
  }

  /**
   * Checks the offered entries among themselves: contiguous indexes after prevIndex, terms
   * non-decreasing and not above the message term, hash chain intact from prevHash, well-formed
   * configuration changes. Returns a problem description or null.
   */
  protected checkOfferedEntries(m: AppMessage): { index: number; reason: string } | null {
    // wellFormed() (in step()) has checked the field types: prevIndex and prevTerm are non-negative
    // safe integers, prevHash is a Uint8Array, entries an array.
    if (m.prevHash.length !== HASH_BYTES) {
      return { index: m.prevIndex, reason: 'prevHash is not 32 bytes' }
    }
    if (m.prevTerm > m.term) {
      return { index: m.prevIndex, reason: 'bad prevIndex or prevTerm' }
    }
    let prevHash = m.prevHash
    let prevTerm = m.prevTerm
    for (let k = 0; k < m.entries.length; k++) {
      const e = m.entries[k]!
      const index = m.prevIndex + 1 + k
      if (e.index !== index) return { index, reason: `entry ${k} has index ${e.index}` }
      if (e.term < prevTerm || e.term > m.term) return { index, reason: `term ${e.term} out of order` }
      if (e.type !== 'normal' && e.type !== 'confChange') return { index, reason: 'unknown entry type' }
      if (!(e.data instanceof Uint8Array) || !(e.hash instanceof Uint8Array) || e.hash.length !== HASH_BYTES) {
        return { index, reason: 'malformed entry' }
      }
      // An entry object we already hold (same object, in-process transports) was checked when stored.
      if (this.log.entry(index) !== e) {
        if (!equalBytes(computeEntryHash(prevHash, e.index, e.term, e.type, e.data), e.hash)) {
          return { index, reason: 'hash chain broken' }
        }
        if (e.type === 'confChange') {
          try {
            decodeConfEntry(e.data)
          } catch (err) {
            return { index, reason: (err as Error).message }
          }
        }
      }
      prevHash = e.hash
      prevTerm = e.term
    }
    return null
  }

  protected handleAppendEntries(m: AppMessage): void {
    const bad = this.checkOfferedEntries(m)
    if (bad !== null) {
      this.raiseAlarm({ kind: 'invalid-append', from: m.from, term: m.term, index: bad.index, reason: bad.reason })
      return
    }
    const verify = this.cfg.verifyHashChain
    const committed = this.log.committed
    const snapIndex = this.log.snapshotMeta().index

    // Consistency check at prevIndex (§5.3).
    if (m.prevIndex > this.log.lastIndex()) {
      this.rejectAppend(m)
      return
    }
    if (m.prevIndex >= snapIndex) {
      const localTerm = this.log.term(m.prevIndex)!
      const localHash = this.log.hash(m.prevIndex)!
      if (localTerm !== m.prevTerm || (verify && !equalBytes(localHash, m.prevHash))) {
        if (m.prevIndex <= committed) {
          this.alarmCommittedConflict(m, m.prevIndex, localTerm, localHash, m.prevTerm, m.prevHash)
          return
        }
        this.rejectAppend(m)
        return
      }
    }
    // Below the snapshot everything is committed and compacted; entries there are skipped.

    // Find the first offered entry that is not already in the log.
    let appendFrom = -1
    for (let k = 0; k < m.entries.length; k++) {
      const e = m.entries[k]!
      if (e.index < snapIndex) continue
      if (e.index > this.log.lastIndex()) {
        appendFrom = k
        break
      }
      const localTerm = this.log.term(e.index)!
      const localHash = this.log.hash(e.index)!
      if (localTerm === e.term && (!verify || equalBytes(localHash, e.hash))) continue
      if (e.index <= committed) {
        // Never truncate a committed entry, whatever the leader says.
        this.alarmCommittedConflict(m, e.index, localTerm, localHash, e.term, e.hash)
        return
      }
      appendFrom = k
      break
    }
    if (appendFrom >= 0 && this.certified && m.entries[appendFrom]!.index <= this.leaderMatch) {
      // This term's leader already gave us a different entry here: a leader never rewrites its own
      // log, so it told different members different things.
      this.raiseAlarm({
        kind: 'invalid-append',
        from: m.from,
        term: m.term,
        index: m.entries[appendFrom]!.index,
        reason: `equivocation: the leader of term ${m.term} sent a different entry ${m.entries[appendFrom]!.index} before`
      })
      return
    }
    if (appendFrom >= 0) {
      const fresh = m.entries.slice(appendFrom)
      const problem = this.checkConfChangesApply(fresh)
      if (problem !== null) {
        this.raiseAlarm({
          kind: 'invalid-append',
          from: m.from,
          term: m.term,
          index: problem.index,
          reason: problem.reason
        })
        return
      }
      this.truncateAndAppend(fresh)
    }
    const lastNew = m.prevIndex + m.entries.length
    if (this.certified) {
      this.leaderMatch = Math.max(this.leaderMatch, Math.min(lastNew, this.log.lastIndex()))
      this.commitByCertificate(this.checkedAcks(m.commitCertificate))
    } else {
      this.commitTo(Math.min(m.commit, lastNew, this.log.lastIndex()))
    }
    // Acknowledge: our log matches the leader's up to lastNew, and up to our commit index anyway
    // (the leader holds every committed entry, §5.4.1).
    this.sendAccept(m.from, Math.max(lastNew, this.log.committed))
  }

  /** An accepting appResp; with lying voters it carries the claim signed in ready() (signAcks). */
  protected sendAccept(to: NodeId, index: number): void {
    const hash = this.certified ? this.log.hash(index) : null
    if (hash === null) {
      this.send({ type: 'appResp', to, index, reject: false, hintIndex: 0, hintTerm: 0 })
      return
    }
    // The claim is made now, while it is true; it is signed once per Ready for each leader.
    const ack = { hash, locked: Math.min(this.durableCommit, index), signature: NO_SIGNATURE }
    this.send({ type: 'appResp', to, index, reject: false, hintIndex: 0, hintTerm: 0, ack })
  }

  /**
   * Signs the last acceptance to each member in this Ready (acknowledgements are cumulative) and
   * drops the earlier ones, and acceptances of a term this node has left: one signature per batch.
   */
  private signAcks(msgs: Message[]): Message[] {
    const last = new Map<NodeId, number>()
    for (let k = 0; k < msgs.length; k++) {
      const m = msgs[k]!
      if (m.type === 'appResp' && m.ack !== undefined) last.set(m.to, k)
    }
    if (last.size === 0) return msgs
    const out: Message[] = []
    for (let k = 0; k < msgs.length; k++) {
      const m = msgs[k]!
      if (m.type !== 'appResp' || m.ack === undefined) {
        out.push(m)
        continue
      }
      if (last.get(m.to) !== k || m.term !== this.term) continue
      const claim: AckClaim = { term: m.term, index: m.index, hash: m.ack.hash, locked: m.ack.locked }
      out.push({ ...m, ack: { ...m.ack, signature: this.cfg.votes!.signAck!(claim) } })
    }
    return out
  }

  /**
   * Counts acknowledgements that match this log, one per voter: the quorum-th highest index is
   * committed if it is of this term (§5.4.2), and the quorum-th highest index held committed
   * (`locked`) may be applied: a quorum promised never to truncate it, so no other entry can ever
   * be committed there (docs/raft.md, "A member that lies"). Returns true if either rose.
   */
  protected commitByCertificate(acks: ReadonlyMap<NodeId, SignedAck>): boolean {
    const q = this.tracker.quorum()
    const held: number[] = []
    const locked: number[] = []
    for (const v of this.tracker.config.voters) {
      const a = acks.get(v)
      if (a === undefined) continue
      held.push(a.index)
      locked.push(Math.min(a.locked, a.index))
    }
    if (q === 0 || held.length < q) return false
    held.sort((a, b) => b - a)
    locked.sort((a, b) => b - a)
    const applicable = Math.min(locked[q - 1]!, this.log.lastIndex())
    let commit = Math.min(held[q - 1]!, this.log.lastIndex())
    if (this.log.term(commit) !== this.term) commit = 0
    const oldCommit = this.log.committed
    const oldApplicable = this.log.applicable
    const target = Math.max(commit, applicable)
    if (target > oldCommit) this.commitTo(target)
    if (applicable > oldApplicable) this.log.applicable = Math.min(applicable, this.log.committed)
    return this.log.committed > oldCommit || this.log.applicable > oldApplicable
  }

  /** Leader: the latest verified acknowledgement of each member, its own included. */
  protected leaderAcks(): Map<NodeId, SignedAck> {
    const out = new Map<NodeId, SignedAck>()
    for (const [id, ring] of this.acks) {
      const a = ring[ring.length - 1]
      if (a !== undefined) out.set(id, a)
    }
    return out
  }

  /** Leader: signs what its own durable log and commit index say, when that changed. */
  protected recordSelfAck(): void {
    const index = this.log.persistedIndex
    const hash = this.log.hash(index)
    if (hash === null) return
    const locked = Math.min(this.durableCommit, index)
    const s = this.selfAck
    if (s !== null && s.index === index && s.locked === locked && s.term === this.term) return
    const claim: AckClaim = { term: this.term, index, hash, locked }
    this.selfAck = { ...claim, voter: this.id, signature: this.cfg.votes!.signAck!(claim) }
    this.pushAck(this.id, this.selfAck)
  }

  /** Leader: keeps a follower's acknowledgement if it is signed and matches this log. */
  protected recordAck(m: AppRespMessage): void {
    const a = m.ack
    if (a === undefined || !isIndex(a.locked) || a.locked > m.index || !isBytes(a.hash)) return
    const hash = this.log.hash(m.index)
    if (hash === null || !equalBytes(hash, a.hash)) return
    const ring = this.acks.get(m.from)
    const last = ring?.[ring.length - 1]
    if (last !== undefined && last.index === m.index && last.locked === a.locked) return
    const claim: AckClaim = { term: m.term, index: m.index, hash: a.hash, locked: a.locked }
    if (!isBytes(a.signature) || !this.cfg.votes!.verifyAck!(m.from, claim, a.signature)) {
      this.raiseAlarm({
        kind: 'refused-message',
        from: m.from,
        term: m.term,
        type: m.type,
        reason: 'an acknowledgement without a valid signature'
      })
      return
    }
    this.pushAck(m.from, { ...claim, voter: m.from, signature: a.signature })
  }

  private pushAck(id: NodeId, ack: SignedAck): void {
    let ring = this.acks.get(id)
    if (ring === undefined) {
      ring = []
      this.acks.set(id, ring)
    }
    // Rising by index: a member that went back (lost writes) starts again from there.
    while (ring.length > 0 && ring[ring.length - 1]!.index >= ack.index) ring.pop()
    ring.push(ack)
    if (ring.length > ACK_HISTORY) ring.shift()
  }

  /**
   * Leader: for a message after which the follower holds the log up to `upTo`, each voter's latest
   * acknowledgement at or below it, which the follower can check against its own log.
   */
  protected commitCertificateFor(upTo: number): CommitCertificate {
    const acks: SignedAck[] = []
    for (const v of this.tracker.config.voters) {
      const ring = this.acks.get(v)
      if (ring === undefined) continue
      for (let k = ring.length - 1; k >= 0; k--) {
        if (ring[k]!.index <= upTo) {
          acks.push(ring[k]!)
          break
        }
      }
    }
    return { acks }
  }

  /**
   * Follower: the acknowledgements of a commit certificate that count: of this term, by a voter of
   * our configuration, signed, and naming an entry our log holds with the same hash (so the signer
   * holds our log up to it).
   */
  protected checkedAcks(cert: CommitCertificate | undefined): Map<NodeId, SignedAck> {
    const out = new Map<NodeId, SignedAck>()
    if (cert === undefined || !Array.isArray(cert.acks)) return out
    const voters = this.tracker.config.voters
    let seen = 0
    for (const a of cert.acks) {
      if (++seen > voters.length * 2) break
      if (typeof a !== 'object' || a === null || a.term !== this.term || out.has(a.voter)) continue
      if (!voters.includes(a.voter) || !isIndex(a.index) || !isIndex(a.locked) || a.locked > a.index) continue
      if (a.index > this.log.lastIndex() || !isBytes(a.hash) || !isBytes(a.signature)) continue
      const hash = this.log.hash(a.index)
      if (hash === null || !equalBytes(hash, a.hash)) continue
      if (!this.ackVerified(a)) continue
      out.set(a.voter, a)
    }
    return out
  }

  /** A signature check per acknowledgement, not per message: checked ones are remembered. */
  private ackVerified(a: SignedAck): boolean {
    let cache = this.verifiedAcks.get(a.voter)
    const same = (c: SignedAck): boolean =>
      c.term === a.term &&
      c.index === a.index &&
      c.locked === a.locked &&
      equalBytes(c.hash, a.hash) &&
      equalBytes(c.signature, a.signature)
    if (cache?.some(same)) return true
    if (!this.cfg.votes!.verifyAck!(a.voter, a, a.signature)) return false
    if (cache === undefined) {
      cache = []
      this.verifiedAcks.set(a.voter, cache)
    }
    cache.push(a)
    if (cache.length > ACK_HISTORY) cache.shift()
    return true
  }

  /** Would the configuration changes among `entries` apply, starting from the configuration before entries[0]? */
  protected checkConfChangesApply(entries: readonly Entry[]): { index: number; reason: string } | null {
    let config: Configuration | null = null
    for (const e of entries) {
      if (e.type !== 'confChange') continue
      config ??= this.log.configurationAt(entries[0]!.index - 1)
      try {
        config = applyConfEntry(config, decodeConfEntry(e.data))
      } catch (err) {
        return { index: e.index, reason: (err as Error).message }
      }
    }
    return null
  }

  /** Replaces the log suffix from entries[0].index on by `entries`. */
  protected truncateAndAppend(entries: readonly Entry[]): void {
    const first = entries[0]!.index
    if (first <= this.log.lastIndex()) this.log.truncateFrom(first)
    this.log.append(entries)
    this.syncProgressWithConfiguration()
  }

  protected rejectAppend(m: AppMessage): void {
    // Point the leader at the last index that can possibly match (fast backtracking): no entry of
    // ours above it has a term <= prevTerm.
    const hint = this.log.findConflictByTerm(Math.min(m.prevIndex, this.log.lastIndex()), m.prevTerm)
    this.send({
      type: 'appResp',
      to: m.from,
      index: m.prevIndex,
      reject: true,
      hintIndex: hint.index,
      hintTerm: hint.term
    })
  }

  protected alarmCommittedConflict(
    m: Message,
    index: number,
    localTerm: number,
    localHash: Uint8Array,
    offeredTerm: number,
    offeredHash: Uint8Array
  ): void {
    this.raiseAlarm({
      kind: 'committed-entry-conflict',
      index,
      localTerm,
      localHash,
      offeredTerm,
      offeredHash,
      from: m.from,
      term: m.term
    })
  }

  protected handleHeartbeat(m: HeartbeatMessage): void {
    if (m.commit > this.log.lastIndex()) {
      // The leader believes we hold entries we do not: our store lost acknowledged writes.
      this.raiseAlarm({
        kind: 'commit-beyond-log',
        from: m.from,
        term: m.term,
        commit: m.commit,
        lastIndex: this.log.lastIndex()
      })
      // Say so to the leader: a rejection below its match for us makes it resend from our log's end.
      this.send({
        type: 'appResp',
        to: m.from,
        index: m.commit,
        reject: true,
        hintIndex: this.log.lastIndex(),
        hintTerm: 0
      })
    } else if (!this.certified) {
      this.commitTo(m.commit)
    }
    if (this.certified) this.commitByCertificate(this.checkedAcks(m.commitCertificate))
    this.send({ type: 'heartbeatResp', to: m.from, context: m.context })
  }

  protected handleSnapshot(m: SnapMessage): void {
    const meta = m.snapshot.meta
    const problem = checkSnapshotMeta(meta)
    if (problem !== null || meta.term > m.term || !(m.snapshot.data instanceof Uint8Array)) {
      this.raiseAlarm({
        kind: 'invalid-append',
        from: m.from,
        term: m.term,
        index: meta.index,
        reason: problem ?? 'bad snapshot'
      })
      return
    }
    const verify = this.cfg.verifyHashChain
    if (meta.index <= this.log.committed) {
      // Stale: we already have everything it covers. Check it agrees with what we know.
      const localTerm = this.log.term(meta.index)
      if (localTerm !== null && !this.log.matches(meta.index, meta.term, verify ? meta.hash : null)) {
        this.alarmCommittedConflict(m, meta.index, localTerm, this.log.hash(meta.index)!, meta.term, meta.hash)
        return
      }
    } else if (this.log.matches(meta.index, meta.term, verify ? meta.hash : null)) {
      // Our log already contains the snapshot's last entry: keep the log, commit up to it.
      this.commitTo(meta.index)
    } else {
      this.restoreSnapshot(m.snapshot)
    }
    this.send({ type: 'appResp', to: m.from, index: this.log.committed, reject: false, hintIndex: 0, hintTerm: 0 })
  }

  protected restoreSnapshot(snapshot: Snapshot): void {
    this.log.restore(snapshot)
    this.syncProgressWithConfiguration()
  }

  // ===========================================================================================
  // Linearizable reads

  protected handleReadIndex(context: Uint8Array, from: NodeId | null): void {
    if (!this.committedEntryInCurrentTerm()) {
      // Our commit index may lag the previous leader's until an entry of our term commits. A lone
      // voter too: the commit index it restarted with may be older than one it acknowledged (a
      // driver need not sync a batch that only raises the commit index).
      if (this.readsAwaitingCommit.length + this.reads.size >= this.cfg.maxPendingReads) {
        throw new ProposalError('too-many-pending-reads', `${this.cfg.maxPendingReads} reads pending`)
      }
      this.readsAwaitingCommit.push({ context, from })
      return
    }
    const voters = this.tracker.config.voters
    if (voters.length === 1 && voters[0] === this.id) {
      this.respondRead(this.log.committed, context, from)
      return
    }
    this.queueRead(context, from)
  }

  protected queueRead(context: Uint8Array, from: NodeId | null): void {
    if (this.reads.size >= this.cfg.maxPendingReads) {
      throw new ProposalError('too-many-pending-reads', `${this.cfg.maxPendingReads} reads pending`)
    }
    if (!this.reads.add(this.log.committed, context, from)) return
    // Confirm leadership with a heartbeat round that starts after the request arrived.
    if (this.tracker.isVoter(this.id)) this.recordReadAck(this.id, context)
    if (this.reads.has(context)) this.bcastHeartbeat(context, false)
  }

  protected recordReadAck(from: NodeId, context: Uint8Array): void {
    if (!this.tracker.isVoter(from)) return
    if (this.reads.recordAck(from, context) < this.tracker.quorum()) return
    for (const req of this.reads.release(context)) this.respondRead(req.index, req.context, req.from)
  }

  protected respondRead(index: number, context: Uint8Array, from: NodeId | null): void {
    if (from === null || from === this.id) this.readStates.push({ index, context })
    else this.send({ type: 'readIndexResp', to: from, index, context })
  }

  // ===========================================================================================
  // Leadership transfer

  protected handleTransferLeader(target: NodeId, local: boolean): void {
    if (target === this.id || !this.tracker.isVoter(target)) {
      if (local) {
        throw new ProposalError(
          'invalid-transfer-target',
          `${target} is ${target === this.id ? 'this node' : 'not a voter'}`
        )
      }
      return
    }
    if (this.leadTransferee === target) return
    this.leadTransferee = target
    // The transfer must finish within an election timeout, counted from now.
    this.electionElapsedTicks = 0
    const pr = this.tracker.progress.get(target)!
    if (pr.match === this.log.lastIndex()) this.send({ type: 'timeoutNow', to: target })
    else this.sendAppend(target)
  }

  // ===========================================================================================
  // Plumbing

  protected send(m: Outgoing): void {
    ;(m as { from?: NodeId }).from = this.id
    if (m.term === undefined) (m as { term?: number }).term = this.term
    if (this.certificate !== null && this.role === 'leader' && isLeaderMessage(m as Message)) {
      ;(m as { certificate?: ElectionCertificate }).certificate = this.certificate
    }
    this.msgs.push(m as Message)
  }

  protected hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed }
  }

  private softStateChanged(): boolean {
    return this.prevSoft.role !== this.role || this.prevSoft.leader !== this.leader
  }

  private hardStateChanged(): boolean {
    const h = this.prevHard
    return h.term !== this.term || h.vote !== this.vote || h.commit !== this.log.committed
  }
}

// =============================================================================================
// Validation of messages, persisted state and snapshots

const isIndex = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
const isBytes = (v: unknown): boolean => v instanceof Uint8Array
const isContext = (v: unknown): boolean => v === null || isBytes(v)

/** Shallow shape check of a message from the network (a codec should have done it already). */
function wellFormed(m: Message): boolean {
  if (typeof m.from !== 'string' || m.from.length === 0 || !isIndex(m.term)) return false
  switch (m.type) {
    case 'app':
      return (
        isIndex(m.prevIndex) &&
        isIndex(m.prevTerm) &&
        isBytes(m.prevHash) &&
        Array.isArray(m.entries) &&
        isIndex(m.commit)
      )
    case 'appResp':
      return isIndex(m.index) && typeof m.reject === 'boolean' && isIndex(m.hintIndex) && isIndex(m.hintTerm)
    case 'vote':
    case 'preVote':
      return isIndex(m.lastIndex) && isIndex(m.lastTerm) && typeof m.force === 'boolean'
    case 'voteResp':
    case 'preVoteResp':
      return typeof m.reject === 'boolean'
    case 'heartbeat':
      return isIndex(m.commit) && isContext(m.context)
    case 'heartbeatResp':
      return isContext(m.context)
    case 'snap':
      return (
        typeof m.snapshot === 'object' &&
        m.snapshot !== null &&
        typeof m.snapshot.meta === 'object' &&
        m.snapshot.meta !== null
      )
    case 'timeoutNow':
      return true
    case 'readIndex':
      return isBytes(m.context)
    case 'readIndexResp':
      return isIndex(m.index) && isBytes(m.context)
    case 'transferLeader':
      return typeof m.target === 'string'
    default:
      return false
  }
}

function checkSnapshotMeta(meta: SnapshotMeta): string | null {
  if (!Number.isSafeInteger(meta.index) || meta.index < 0) return 'snapshot index is not a non-negative integer'
  if (!Number.isSafeInteger(meta.term) || meta.term < 0) return 'snapshot term is not a non-negative integer'
  if (!(meta.hash instanceof Uint8Array) || meta.hash.length !== HASH_BYTES) return 'snapshot hash is not 32 bytes'
  if (meta.index === 0 && (meta.term !== 0 || !equalBytes(meta.hash, ZERO_HASH)))
    return 'empty snapshot must have term 0 and the zero hash'
  if (meta.index > 0 && meta.term === 0) return 'snapshot term is 0'
  return checkConfiguration(meta.configuration)
}

function validatePersisted(p: PersistedState): void {
  const fail = (msg: string): never => {
    throw new InconsistentStoreError(msg)
  }
  const hs = p.hardState
  if (!Number.isSafeInteger(hs.term) || hs.term < 0) fail(`hardState.term ${hs.term} is not a non-negative integer`)
  if (hs.vote !== null && (typeof hs.vote !== 'string' || hs.vote.length === 0))
    fail('hardState.vote must be null or a node id')
  if (!Number.isSafeInteger(hs.commit) || hs.commit < 0)
    fail(`hardState.commit ${hs.commit} is not a non-negative integer`)
  const meta = p.snapshot.meta
  const problem = checkSnapshotMeta(meta)
  if (problem !== null) fail(problem)
  if (meta.term > hs.term) fail(`snapshot term ${meta.term} is above hardState.term ${hs.term}`)
  let prevHash = meta.hash
  let prevTerm = meta.term
  for (let k = 0; k < p.entries.length; k++) {
    const e = p.entries[k]!
    const index = meta.index + 1 + k
    if (e.index !== index) fail(`entries are not contiguous: expected index ${index}, found ${e.index}`)
    if (e.term < prevTerm) fail(`entry ${index} has term ${e.term} below the previous term ${prevTerm}`)
    if (e.term > hs.term) fail(`entry ${index} has term ${e.term} above hardState.term ${hs.term}`)
    if (e.type !== 'normal' && e.type !== 'confChange') fail(`entry ${index} has unknown type`)
    if (
      !(e.hash instanceof Uint8Array) ||
      !equalBytes(computeEntryHash(prevHash, e.index, e.term, e.type, e.data), e.hash)
    ) {
      fail(`hash chain broken at entry ${index}`)
    }
    prevHash = e.hash
    prevTerm = e.term
  }
  const lastIndex = meta.index + p.entries.length
  if (hs.commit < meta.index) fail(`commit ${hs.commit} is below the snapshot index ${meta.index}`)
  if (hs.commit > lastIndex) {
    fail(`commit ${hs.commit} is beyond the last stored index ${lastIndex} (entries acknowledged but not synced?)`)
  }
  const applied = p.applied ?? meta.index
  if (!Number.isSafeInteger(applied) || applied < meta.index || applied > hs.commit) {
    fail(`applied ${applied} must lie between the snapshot index ${meta.index} and commit ${hs.commit}`)
  }
}
