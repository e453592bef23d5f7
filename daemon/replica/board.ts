import assert from 'node:assert/strict'
import { randomBytes, randomInt } from 'node:crypto'
import { decodeHistory, encodeHistory, verifyHistory } from '../../board/history.js'
import { equalBytes, toHex } from '../../protocol/bytes.js'
import {
  bootstrapState,
  joiningState,
  ProposalError,
  Raft,
  ZERO_HASH,
  type Alarm,
  type ConfChange,
  type Configuration,
  type Entry,
  type Message,
  type NodeId,
  type PersistedState,
  type Ready,
  type Role,
  type SnapMessage,
  type VoteAuthority
} from '../../board/raft/index.js'
import type { BatchOp, RaftStore } from '../../storage/raft-store.js'
import type { BoardPromise, PromiseFile } from '../../storage/promise-file.js'
import { LogLimiter, type Logger } from '../host/log.js'
import { Quarantine } from './quarantine.js'

// daemon/replica/: this node's replica of the board: the Raft driver (this file), the transport
// (transport/), proposal forwarding (forward.ts), the pool applier, the one way back from the board
// (pool-applier.ts), and the signature workers.

/** How Raft messages leave and reach this node (daemon/replica/transport/ over libp2p). */
export interface BoardTransport {
  send: (message: Message) => void
  onMessage: (handler: (message: Message) => void) => void
}

/** Applies committed entries to the board's state; returns the batch ops recording the new state. */
export interface BoardApplier {
  apply: (entries: readonly Entry[]) => Promise<BatchOp[]>
}

export interface BoardTiming {
  tickMs: number
  heartbeatTicks: number
  electionTicks: number
  /**
   * The length of a tick while the board is quiet (see `BoardReplica.quiet`): heartbeats and
   * election timeouts stretch alike, so an idle pool wakes a few times a second instead of forty.
   * 0 or absent: always `tickMs` (the simulator's choice).
   */
  idleTickMs?: number
}

/** A leader slows down after this long without activity; its followers slow down sooner. */
const LEADER_QUIET_AFTER_MS = 2_000
const FOLLOWER_QUIET_AFTER_MS = 1_000

/**
 * Time and chance as the board sees them: Node's timers, event loop and crypto in production
 * (`NODE_CLOCK`); the deterministic simulator (test/sim/) gives its own, so that one seed replays
 * the same run.
 */
export interface BoardClock {
  setInterval: (fn: () => void, ms: number) => unknown
  clearInterval: (handle: unknown) => void
  setTimeout: (fn: () => void, ms: number) => unknown
  clearTimeout: (handle: unknown) => void
  /** Resolves once every step and proposal of this turn of the event loop has run. */
  nextTurn: () => Promise<void>
  /** A monotonic time in milliseconds (only differences are used). */
  nowMs: () => number
  /** A wall-clock time for the records of alarms. */
  isoTime: () => string
  /** A uniform random integer in [0, n). */
  randomInt: (n: number) => number
  randomBytes: (n: number) => Uint8Array
}

export const NODE_CLOCK: BoardClock = {
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (handle) => {
    clearInterval(handle as NodeJS.Timeout)
  },
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => {
    clearTimeout(handle as NodeJS.Timeout)
  },
  nextTurn: async () => {
    await new Promise((resolve) => setImmediate(resolve))
  },
  nowMs: () => performance.now(),
  isoTime: () => new Date().toISOString(),
  randomInt: (n) => randomInt(n),
  randomBytes: (n) => new Uint8Array(randomBytes(n))
}

export interface BoardOptions {
  selfId: NodeId
  store: RaftStore
  transport: BoardTransport
  applier: BoardApplier
  logger: Logger
  timing: BoardTiming
  /** Take a snapshot (compact the in-memory log) every this many applied entries. */
  snapshotEveryEntries: number
  /** The configuration of a new board; used only the very first time, when the store is empty. */
  initialConfiguration: Configuration
  /**
   * Starts the expensive checks applying these entries will make (signature verification on worker
   * threads) and resolves when they are done; called as entries arrive and awaited before applying.
   */
  prepareApply?: (entries: readonly Entry[]) => Promise<void>
  /** Called when the node must stop: the store failed, so it cannot keep its promises. */
  onFatal: (err: Error) => void
  /** Compare entry hashes where plain Raft compares terms (the hash-chain defense; on by default). */
  verifyHashChain?: boolean
  /**
   * What this node promised (hard state, last durable entry), kept outside LevelDB and read at
   * start: a store that holds less lost writes (docs/operations.md, "Lost durable state").
   */
  promises?: { file: PromiseFile; promise: BoardPromise | null }
  /** Signs this node's votes and checks others' (election certificates, docs/raft.md); null: plain Raft. */
  votes?: VoteAuthority | null
  /**
   * Voters that may lie (docs/raft.md, "A member that lies"): quorums of floor((n + f) / 2) + 1,
   * signed acknowledgements, commits proven by certificate. Needs `votes`. Default 0.
   */
  faultyVoters?: number
  /** Called with every alarm the core raises, after it is logged (the hash-chain defense makes a proof of it). */
  onAlarm?: (alarm: Alarm) => void
  /** Called when this node's role or the leader it knows changes (metrics count leader changes). */
  onSoftState?: (role: Role, leader: NodeId | null) => void
  /** Timers, event loop and randomness (default NODE_CLOCK); the simulator passes its own. */
  clock?: BoardClock
  /** Lab mode only (daemon/lab/): rewrites a message before the core steps it, as a lying member would. */
  labInbound?: (m: Message, log: Pick<Raft, 'entryAt' | 'termAt' | 'hashAt'>) => Message
  /** Lab mode only: while this node leads, a reason to drop a proposal (a censoring leader), or null. */
  labDrop?: (data: Uint8Array) => string | null
}

export interface BoardStatus {
  id: NodeId
  role: Role
  term: number
  leader: NodeId | null
  commit: number
  applied: number
  lastIndex: number
  snapshotIndex: number
  configuration: Configuration
  /** On the leader: each member's match index and replication state. */
  progress: Record<NodeId, { match: number; next: number; state: string; isLearner: boolean }> | null
  alarms: number
  /** Members this node no longer follows or votes for: they offered to rewrite committed entries. */
  shunned: NodeId[]
  /** Members whose frames this node drops for now: they kept sending frames the core refused. */
  quarantined: NodeId[]
}

/** A proposal or read the caller gave up on, or that the board could not take. */
export class BoardError extends Error {
  constructor(
    readonly code: 'not-leader' | 'refused' | 'timeout' | 'superseded' | 'stopped',
    message: string,
    readonly leader: NodeId | null = null
  ) {
    super(message)
    this.name = 'BoardError'
  }
}

interface Waiter<T> {
  resolve: (value: T) => void
  reject: (err: Error) => void
  timer: unknown
}

const EMPTY = new Uint8Array(0)
const MAX_PENDING_PROPOSALS = 100_000
const MAX_PENDING_READS = 10_000
const MAX_RECENT_ALARMS = 100
const MAX_SHUNNED = 1_024
const MAX_INCOMING_SNAPSHOTS = 4
/**
 * A learner is promoted (a voter added) only once its log is at most this many entries behind the
 * leader's and it answered within the last election timeout: a voter that cannot acknowledge may
 * leave the board without a quorum, and no further change is accepted while that one is pending.
 */
const MAX_CATCH_UP_LAG_ENTRIES = 64
/** A board entry's header: version and kind bytes (board/entries.ts). */
const ENTRY_HEADER_BYTES = 2
/** What a leader or a candidate sends: ignored from a member proven to rewrite committed entries. */
const LEADING_MESSAGES = new Set<Message['type']>(['app', 'heartbeat', 'snap', 'timeoutNow', 'vote', 'preVote'])
/** A persist slower than this is logged: a stalled disk stalls the board (and should cost leadership). */
const SLOW_PERSIST_MS = 500
const ALARM_LOG_INTERVAL_MS = 10_000

/**
 * This node's replica of the board (the Raft log; the pool board is its state machine, board/pool-board.ts).
 * The driver around the pure Raft core: a timer ticks it, the transport feeds it messages, and one
 * loop handles each Ready in the order of the durability contract (board/raft/types.ts): persist
 * in one synced batch, then send, then apply, then advance. Proposals that arrive while a batch is
 * being written go into the next one, so many proposals share one fsync.
 */
export class BoardReplica {
  private readonly raft: Raft
  private tickTimer: unknown
  /** The period of `tickTimer`: `tickMs`, or `idleTickMs` while quiet. */
  private tickPeriodMs = 0
  /** Last time something other than heartbeats happened here (a proposal, a read, an entry, a vote). */
  private lastActiveMs = 0
  private loop: Promise<void> | undefined
  private stopped = false
  private failed = false
  private readonly proposals = new Map<number, Waiter<{ index: number; term: number }> & { term: number }>()
  private readonly reads = new Map<string, Waiter<number>>()
  /** Reads confirmed by the leader, waiting for this node to apply up to their index. */
  private readonly confirmedReads: Array<{ index: number; waiter: Waiter<number> }> = []
  private readCounter = 0n
  /**
   * Read contexts are this node's random prefix and a counter: the leader ignores a read whose
   * context is already pending, so two members (or one member before and after a restart) must
   * never send the same context.
   */
  private readonly readPrefix: Uint8Array
  /** Committed entries applied to the in-memory board state. */
  private applied: number
  /** Applied and written: what readers (status, the log API, read states) may see. */
  private readableApplied: number
  private readonly snapshotsSending = new Set<NodeId>()
  /**
   * Verified entries of the snapshots stepped into the core, by snapshot index, kept until the Ready
   * that restores one persists it (a later one may arrive first; the core ignores those it is past).
   */
  private readonly incomingSnapshots = new Map<number, { entries: Entry[]; prevIndex: number; prevHash: Uint8Array }>()
  readonly recentAlarms: Array<Alarm & { at: string }> = []
  /**
   * Entries whose checks are being prepared (signatures on worker threads), by index. Holds only
   * entries of the log not yet applied: applying removes them, replacing them in the log forgets them.
   */
  private readonly preparing = new Map<number, Promise<void>>()
  /** Members proven (by an alarm) to offer rewrites of committed entries: never followed again. */
  private readonly shunned = new Set<NodeId>()
  private alarmCount = 0
  private readonly quarantine = new Quarantine()
  /** Alarms are caused by peers: at most one line per kind and member per interval. */
  private readonly alarmLog: LogLimiter
  /** The store lost entries this node acknowledged: it does not vote until it has them again. */
  private holdingVotes = false

  private readonly clock: BoardClock

  private constructor(
    private readonly options: BoardOptions,
    raft: Raft
  ) {
    this.clock = options.clock ?? NODE_CLOCK
    this.readPrefix = this.clock.randomBytes(8)
    this.raft = raft
    this.applied = raft.status().applied
    this.readableApplied = this.applied
    this.alarmLog = new LogLimiter(options.logger, ALARM_LOG_INTERVAL_MS)
  }

  /** Restores the core from the store (or bootstraps it) and wires the transport. */
  static async open(options: BoardOptions): Promise<BoardReplica> {
    const { store, selfId, initialConfiguration, timing } = options
    const clock = options.clock ?? NODE_CLOCK
    let persisted = await store.load()
    if (persisted === null) {
      const isMember = initialConfiguration.voters.includes(selfId) || initialConfiguration.learners.includes(selfId)
      persisted = isMember ? bootstrapState(initialConfiguration) : joiningState()
      await store.bootstrap(persisted)
    }
    const check = checkPromises(persisted, options.promises?.promise ?? null)
    persisted = check.persisted
    const raft = new Raft(
      {
        id: selfId,
        rand: (n) => clock.randomInt(n),
        electionTicks: timing.electionTicks,
        heartbeatTicks: timing.heartbeatTicks,
        // A learner needs a heartbeat only to keep knowing its leader, which it forgets after an
        // election timeout: two per timeout is enough, and in a pool of many learners it is most
        // of the leader's idle traffic (docs/operations.md, "What wakes an idle node").
        learnerHeartbeatTicks: Math.max(timing.heartbeatTicks, Math.floor(timing.electionTicks / 2)),
        verifyHashChain: options.verifyHashChain ?? true,
        votes: options.votes ?? null,
        faultyVoters: options.faultyVoters ?? 0
      },
      persisted
    )
    const board = new BoardReplica(options, raft)
    if (check.missing !== null) {
      const p = options.promises!.promise!
      raft.holdVotesUntil(p.lastIndex, p.lastHash)
      board.holdingVotes = !raft.keptPromises()
      options.logger.error(
        {
          missing: check.missing,
          promisedIndex: p.lastIndex,
          storedIndex: raft.lastIndex,
          commit: raft.commitIndex,
          term: raft.currentTerm
        },
        `board: the store lost writes this node had made durable (${check.missing}); ` +
          (board.holdingVotes
            ? 'it will not vote until it has caught up from the leader'
            : 'the term and vote are taken from the promise record')
      )
    }
    options.transport.onMessage((m) => {
      board.receive(m)
    })
    return board
  }

  start(): void {
    this.lastActiveMs = this.clock.nowMs()
    this.setTickPeriod(this.options.timing.tickMs)
    this.kick()
  }

  private setTickPeriod(periodMs: number): void {
    if (this.stopped || periodMs === this.tickPeriodMs) return
    if (this.tickTimer !== undefined) this.clock.clearInterval(this.tickTimer)
    this.tickPeriodMs = periodMs
    this.tickTimer = this.clock.setInterval(() => {
      this.raft.tick()
      this.kick()
      if (this.tickPeriodMs !== this.options.timing.idleTickMs && this.quiet()) {
        this.setTickPeriod(this.options.timing.idleTickMs!)
      }
    }, periodMs)
  }

  /**
   * Nothing for Raft to do but keep its leader: a leader with everything committed and nothing
   * pending for a while, or a follower of a known leader that has applied everything. The leader
   * waits longer, so that its followers, which count its slower heartbeats against a timeout
   * stretched alike, have slowed down first. A follower still ticking fast would time out between
   * a quiet leader's heartbeats and start a pre-vote, which the others refuse: harmless, but work.
   */
  private quiet(): boolean {
    const idleTickMs = this.options.timing.idleTickMs ?? 0
    if (idleTickMs <= this.options.timing.tickMs) return false
    if (this.proposals.size > 0 || this.reads.size > 0 || this.confirmedReads.length > 0) return false
    if (this.snapshotsSending.size > 0 || this.incomingSnapshots.size > 0) return false
    const quietMs = this.clock.nowMs() - this.lastActiveMs
    const raft = this.raft
    if (raft.currentRole === 'leader') {
      return (
        quietMs >= LEADER_QUIET_AFTER_MS && raft.commitIndex === raft.lastIndex && raft.status().leadTransferee === null
      )
    }
    return (
      raft.currentRole === 'follower' &&
      raft.leaderId !== null &&
      quietMs >= FOLLOWER_QUIET_AFTER_MS &&
      this.applied === raft.commitIndex
    )
  }

  /** Something happened: tick at the full rate again, at once. */
  private wake(): void {
    this.lastActiveMs = this.clock.nowMs()
    if (this.tickTimer !== undefined && this.tickPeriodMs !== this.options.timing.tickMs)
      this.setTickPeriod(this.options.timing.tickMs)
  }

  /**
   * The member network's news. A leader wakes on any link change: a member coming back gets its
   * heartbeat, and with it the entries it lacks, at the full rate, and a leader cut off from its
   * voters steps down within a full-rate election timeout. A follower wakes when its link to the
   * leader drops, so a leader that died is replaced as fast as on a busy board.
   */
  memberLinkChanged(peerId: NodeId, _connected: boolean): void {
    if (this.raft.currentRole === 'leader' || peerId === this.raft.leaderId) this.wake()
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.tickTimer !== undefined) this.clock.clearInterval(this.tickTimer)
    await this.loop
    await this.options.store.flush()
    await this.options.promises?.file.close()
    const stopped = new BoardError('stopped', 'the node is stopping')
    for (const w of this.proposals.values()) {
      this.clock.clearTimeout(w.timer)
      w.reject(stopped)
    }
    for (const w of this.reads.values()) {
      this.clock.clearTimeout(w.timer)
      w.reject(stopped)
    }
    for (const r of this.confirmedReads) {
      this.clock.clearTimeout(r.waiter.timer)
      r.waiter.reject(stopped)
    }
    this.proposals.clear()
    this.reads.clear()
    this.confirmedReads.length = 0
  }

  /** Proposes `data` and resolves once it is committed and applied on this node. */
  async propose(data: Uint8Array, timeoutMs: number): Promise<{ index: number; term: number }> {
    const dropped = this.raft.currentRole === 'leader' ? (this.options.labDrop?.(data) ?? null) : null
    if (dropped !== null) {
      // What a proposer sees from a censoring leader: its entry never commits.
      this.options.logger.warn({ reason: dropped, bytes: data.length }, 'lab: dropped a proposal')
      await new Promise((resolve) => {
        const t = this.clock.setTimeout(() => {
          resolve(undefined)
        }, timeoutMs)
        ;(t as { unref?: () => void }).unref?.()
      })
      throw new BoardError('timeout', `the entry was not committed within ${timeoutMs} ms; it may still commit`)
    }
    return await this.submit(() => this.raft.propose(data), timeoutMs)
  }

  async changeMembership(change: ConfChange, timeoutMs: number): Promise<{ index: number; term: number }> {
    if (change.kind === 'addVoter' || change.kind === 'promoteLearner') this.checkCaughtUp(change.node)
    if (
      (change.kind === 'demoteVoter' || change.kind === 'removeNode') &&
      change.node === this.options.selfId &&
      this.raft.currentRole === 'leader'
    ) {
      // A change takes effect when appended: the leader would stop leading before its change commits,
      // and if the voters left lack entries only it holds, no one can be elected (a learner does not
      // campaign; the voters refuse each other's older logs). Hand the lead over first.
      throw new BoardError(
        'refused',
        'the leader cannot demote or remove itself: transfer the lead to another voter first',
        this.options.selfId
      )
    }
    return await this.submit(() => this.raft.proposeConfChange(change), timeoutMs)
  }

  /** Refuses to give a vote to a member that could not use it yet (see MAX_CATCH_UP_LAG_ENTRIES). */
  private checkCaughtUp(node: NodeId): void {
    const s = this.raft.status()
    if (s.role !== 'leader' || node === s.id) return // the core refuses or answers these itself
    const pr = s.progress?.[node]
    if (pr === undefined || !pr.isLearner) {
      throw new BoardError(
        'refused',
        `${node} is not a learner: add it as a learner first and make it a voter once it has caught up`,
        s.id
      )
    }
    const lag = s.lastIndex - pr.match
    // match 0: it never acknowledged anything (a fresh learner counts as active for a while).
    if (pr.match === 0 || lag > MAX_CATCH_UP_LAG_ENTRIES || !pr.recentActive) {
      throw new BoardError(
        'refused',
        `${node} has not caught up (${pr.match === 0 ? 'no entry acknowledged yet' : `${lag} entries behind`}${pr.recentActive ? '' : ', silent for an election timeout'}); a voter that cannot acknowledge could leave the board without a quorum`,
        s.id
      )
    }
  }

  /**
   * A linearizable read point: resolves with an index once the leader has confirmed, through a
   * quorum, that it was leader when the read arrived, and this node has applied up to that index.
   * Anything committed before the call is then visible in the applied state.
   */
  async linearizableRead(timeoutMs: number): Promise<number> {
    this.checkOpen()
    if (this.reads.size >= MAX_PENDING_READS)
      throw new BoardError('refused', `more than ${MAX_PENDING_READS} reads pending`)
    const context = new Uint8Array(16)
    context.set(this.readPrefix, 0)
    new DataView(context.buffer).setBigUint64(8, ++this.readCounter)
    const key = toHex(context)
    const promise = new Promise<number>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.reads.delete(key)
        reject(new BoardError('timeout', `no linearizable read within ${timeoutMs} ms (no leader reachable?)`))
      }, timeoutMs)
      this.reads.set(key, { resolve, reject, timer })
    })
    try {
      this.raft.readIndex(context)
    } catch (err) {
      const w = this.reads.get(key)
      if (w !== undefined) {
        this.clock.clearTimeout(w.timer)
        this.reads.delete(key)
      }
      throw this.translate(err)
    }
    this.wake()
    this.kick()
    return await promise
  }

  transferLeadership(to: NodeId): void {
    this.checkOpen()
    this.wake()
    try {
      this.raft.transferLeadership(to)
    } catch (err) {
      throw this.translate(err)
    }
    this.kick()
  }

  status(): BoardStatus {
    const s = this.raft.status()
    let progress: BoardStatus['progress'] = null
    if (s.progress !== null) {
      progress = {}
      for (const [id, p] of Object.entries(s.progress))
        progress[id] = { match: p.match, next: p.next, state: p.state, isLearner: p.isLearner }
    }
    return {
      id: s.id,
      role: s.role,
      term: s.term,
      leader: s.leader,
      commit: s.commit,
      applied: this.readableApplied,
      lastIndex: s.lastIndex,
      snapshotIndex: s.snapshotIndex,
      configuration: s.configuration,
      progress,
      alarms: this.alarmCount,
      shunned: [...this.shunned],
      quarantined: this.quarantine.quarantined()
    }
  }

  get appliedIndex(): number {
    return this.readableApplied
  }

  // Cheap accessors (no copy of the per-member progress that status() makes).
  get role(): Role {
    return this.raft.currentRole
  }

  get leader(): NodeId | null {
    return this.raft.leaderId
  }

  get term(): number {
    return this.raft.currentTerm
  }

  get commit(): number {
    return this.raft.commitIndex
  }

  get alarms(): number {
    return this.alarmCount
  }

  /** Committed and applied entries from `from`, at most `limit`. */
  async committedEntries(from: number, limit: number): Promise<Entry[]> {
    const to = Math.min(this.readableApplied, from + limit - 1)
    return await this.options.store.readEntries(Math.max(1, from), to)
  }

  // ------------------------------------------------------------------------------------------

  private async submit(
    propose: () => { index: number; term: number },
    timeoutMs: number
  ): Promise<{ index: number; term: number }> {
    this.checkOpen()
    if (this.proposals.size >= MAX_PENDING_PROPOSALS)
      throw new BoardError('refused', `more than ${MAX_PENDING_PROPOSALS} proposals pending`)
    let proposed: { index: number; term: number }
    try {
      proposed = propose()
    } catch (err) {
      throw this.translate(err)
    }
    this.wake()
    const promise = new Promise<{ index: number; term: number }>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.proposals.delete(proposed.index)
        reject(
          new BoardError(
            'timeout',
            `entry ${proposed.index} was not committed within ${timeoutMs} ms; it may still commit`
          )
        )
      }, timeoutMs)
      this.proposals.set(proposed.index, { term: proposed.term, resolve, reject, timer })
    })
    this.kick()
    return await promise
  }

  private translate(err: unknown): Error {
    if (err instanceof ProposalError) {
      if (err.reason === 'not-leader') return new BoardError('not-leader', err.message, err.leader)
      return new BoardError('refused', err.message, err.leader)
    }
    return err as Error
  }

  private checkOpen(): void {
    if (this.stopped) throw new BoardError('stopped', 'the node is stopping')
  }

  private receive(m: Message): void {
    if (this.stopped) return
    if (this.shunned.has(m.from) && LEADING_MESSAGES.has(m.type)) return
    const verdict = this.quarantine.admit(m.from)
    if (verdict !== 'pass') {
      // A frame dropped by the throttle counts as refused: a member that keeps flooding is cut off.
      if (verdict === 'throttled') this.refusedFrom(m.from)
      return
    }
    // Heartbeats are what a quiet board still exchanges; anything else is activity.
    if (m.type !== 'heartbeat' && m.type !== 'heartbeatResp') this.wake()
    if (m.type === 'snap') {
      void this.receiveSnapshot(m)
      return
    }
    if (this.options.labInbound !== undefined) m = this.options.labInbound(m, this.raft)
    this.raft.step(m)
    this.kick()
  }

  /**
   * A snapshot carries the committed history this node lacks. It is checked against this node's own
   * log before the core sees it: the chain rebuilt from our entry before it must reach the hash the
   * leader claims.
   */
  private async receiveSnapshot(m: SnapMessage): Promise<void> {
    const { logger, store } = this.options
    // A snapshot of an older term (a deposed leader's, delayed on its own stream) is stale: the core
    // would ignore it, and the leader's match it was cut from may no longer describe this log, so a
    // mismatch proves nothing against its sender.
    if (m.term < this.raft.currentTerm) return
    try {
      const history = decodeHistory(m.snapshot.data)
      const prevIndex = history.firstIndex - 1
      let prevHash = ZERO_HASH
      let prevTerm = 0
      if (prevIndex > 0) {
        const prev = await store.entry(prevIndex)
        if (prev === undefined) {
          logger.warn(
            { from: m.from, firstIndex: history.firstIndex, lastStored: store.lastStoredIndex },
            "dropped a snapshot that does not start where this node's log ends"
          )
          return
        }
        prevHash = prev.hash
        prevTerm = prev.term
      }
      if (this.stopped || m.term < this.raft.currentTerm) return
      const verified = verifyHistory(history, prevHash, m.snapshot.meta)
      if ('problem' in verified) {
        this.raiseAlarm({
          kind: 'invalid-append',
          from: m.from,
          term: m.term,
          index: m.snapshot.meta.index,
          reason: `snapshot: ${verified.problem}`
        })
        return
      }
      if ((this.options.faultyVoters ?? 0) > 0) {
        // With lying voters a history commits nothing on the leader's word: it is stepped as an
        // append of its entries, which commits by certificate like any other (docs/raft.md).
        const { snapshot: _, ...rest } = m
        this.raft.step({
          ...rest,
          type: 'app',
          prevIndex,
          prevTerm,
          prevHash,
          entries: verified.entries,
          commit: m.snapshot.meta.index
        })
        this.kick()
        return
      }
      const index = m.snapshot.meta.index
      if (this.incomingSnapshots.size >= MAX_INCOMING_SNAPSHOTS && !this.incomingSnapshots.has(index)) {
        this.incomingSnapshots.delete(Math.min(...this.incomingSnapshots.keys()))
      }
      this.incomingSnapshots.set(index, { entries: verified.entries, prevIndex, prevHash })
      this.raft.step({ ...m, snapshot: { meta: m.snapshot.meta, data: EMPTY } })
      this.kick()
    } catch (err) {
      logger.warn({ from: m.from, err: (err as Error).message }, 'dropped a malformed snapshot')
    }
  }

  /** Runs the Ready loop unless it is already running; it drains every Ready there is. */
  private kick(): void {
    if (this.loop !== undefined || this.stopped) return
    this.loop = this.drain().finally(() => {
      this.loop = undefined
    })
  }

  private async drain(): Promise<void> {
    try {
      // Yield once so that every step/proposal of this turn of the event loop joins the batch.
      await this.clock.nextTurn()
      while (!this.stopped && this.raft.hasReady()) await this.handle(this.raft.ready())
    } catch (err) {
      this.fail(err)
    }
  }

  /** The store failed: the node cannot keep its promises and must stop. */
  private fail(err: unknown): void {
    if (this.stopped && this.failed) return
    this.failed = true
    this.stopped = true
    if (this.tickTimer !== undefined) this.clock.clearInterval(this.tickTimer)
    this.options.logger.fatal({ err }, 'the board cannot persist or apply: stopping')
    this.options.onFatal(err as Error)
  }

  private async handle(rd: Ready): Promise<void> {
    const { store, transport } = this.options
    let snapshotEntries: Entry[] = []
    /** Committed entries this node stores and has not applied, below a received history. */
    let unappliedBelowHistory: Entry[] = []
    if (rd.snapshot !== null) {
      const index = rd.snapshot.meta.index
      const incoming = this.incomingSnapshots.get(index)
      assert(incoming !== undefined, 'a snapshot in Ready without its verified history')
      for (const i of this.incomingSnapshots.keys()) if (i <= index) this.incomingSnapshots.delete(i)
      snapshotEntries = incoming.entries
      // The history starts after the leader's match for this node, which may be above what this
      // node applied (it acknowledged entries before hearing they were committed). Those entries are
      // in its own store, and the history was checked to continue from the last of them.
      if (incoming.prevIndex > this.applied) {
        unappliedBelowHistory = await store.readEntries(this.applied + 1, incoming.prevIndex)
        const last = unappliedBelowHistory.at(-1)
        assert(
          unappliedBelowHistory.length === incoming.prevIndex - this.applied &&
            last !== undefined &&
            equalBytes(last.hash, incoming.prevHash),
          `the stored entries ${this.applied + 1}..${incoming.prevIndex} below a received history changed since it was checked`
        )
      }
    }
    // A leader's appends may go out while its own copy is being written (Raft thesis §10.2.1):
    // followers write theirs durably before acknowledging, and whatever commits through them is
    // only announced or applied from a later Ready, handled after this write completes. Anything
    // else waits for the write, and so does everything when the term or vote is changing.
    const early = rd.hardState === null || !store.changesTermOrVote(rd.hardState)
    const sendNow = early ? rd.messages.filter((m) => m.type === 'app') : []
    for (const m of sendNow) transport.send(m)
    // A snapshot replaces the whole log and appended entries replace the stored ones from their
    // first index on (board/raft/types.ts, Ready): preparations of replaced entries are stale.
    if (rd.snapshot !== null) this.forgetPreparing(this.applied + 1)
    if (rd.entries.length > 0) this.forgetPreparing(rd.entries[0].index)
    // Entries just appended will be applied soon: verify their signatures meanwhile, off this thread.
    this.startPreparing(rd.entries)

    // Committed entries are applied in memory now and their records join the same atomic batch as
    // the Raft state: a crash keeps both or neither.
    const toApply =
      rd.snapshot !== null
        ? [...unappliedBelowHistory, ...snapshotEntries.filter((e) => e.index > this.applied)]
        : rd.committedEntries
    await this.prepared(toApply)
    const applyOps = await this.applyInMemory(toApply)
    const durableFirst = store.mustSync(rd)
    const startMs = this.clock.nowMs()
    const persisted = store.persist(rd, snapshotEntries, applyOps)
    // The promise record is written beside the batch, not after it: if only it survives a crash,
    // the node believes it lost writes it never acknowledged, which costs a catch-up, never safety.
    const promised = durableFirst ? this.writePromise(rd) : undefined
    const write = promised === undefined ? persisted : Promise.all([persisted, promised]).then(() => undefined)
    // A batch that need not be synced (a commit index and the applied state only) holds nothing
    // another member or a client relies on: what it records is durable elsewhere (the entries on a
    // quorum) or can be rebuilt from the log. Nothing waits for it: the store issues the next
    // write after it, and if it fails the node stops.
    if (durableFirst) {
      await write
      const persistMs = this.clock.nowMs() - startMs
      if (persistMs > SLOW_PERSIST_MS)
        this.options.logger.warn({ persistMs: Math.round(persistMs) }, 'slow disk: persisting a Raft batch took long')
    } else {
      write.catch((err: unknown) => {
        this.fail(err)
      })
    }
    // Entries committed by an unsynced batch were written (synced) by an earlier one, so they are
    // readable from the store now; in a synced batch, only once it is written.
    this.readableApplied = this.applied
    // A message of a term this node has left is stale, and may be false: an acknowledgement made in
    // term T for entries that an append of term T + 1, stepped into the same Ready, replaced. Its
    // leader could count it and commit an entry this node no longer holds. Dropping is always safe.
    const term = this.raft.currentTerm
    for (const m of rd.messages) {
      if (sendNow.length > 0 && m.type === 'app') continue
      if (m.term < term) continue
      if (m.type === 'snap') this.sendSnapshot(m)
      else transport.send(m)
    }
    this.answerProposals(toApply)
    if (toApply.length > 0 && this.options.logger.isLevelEnabled('debug')) {
      this.options.logger.debug(
        {
          from: toApply[0].index,
          to: toApply[toApply.length - 1].index,
          term: this.raft.currentTerm,
          persisted: rd.entries.length,
          sent: rd.messages.length
        },
        'applied board entries'
      )
    }
    for (const rs of rd.readStates) this.confirmRead(toHex(rs.context), rs.index)
    for (const alarm of rd.alarms) this.raiseAlarm(alarm)
    if (rd.softState !== null) {
      this.options.logger.info(
        { role: rd.softState.role, leader: rd.softState.leader, term: this.raft.currentTerm },
        'board role changed'
      )
      this.options.onSoftState?.(rd.softState.role, rd.softState.leader)
      this.wake()
    }
    this.raft.advance(rd)
    if (this.holdingVotes && this.raft.keptPromises()) {
      this.holdingVotes = false
      this.options.logger.warn(
        { lastIndex: this.raft.lastIndex, commit: this.raft.commitIndex },
        'board: caught up past what the store had lost; voting again'
      )
    }
    this.releaseReads()
    await this.maybeCompact()
  }

  /** Records, outside LevelDB, the hard state and last entry this Ready makes durable. */
  private writePromise(rd: Ready): Promise<void> | undefined {
    const file = this.options.promises?.file
    if (file === undefined) return undefined
    const prev = file.current
    let { lastIndex, lastHash } = prev ?? { lastIndex: 0, lastHash: ZERO_HASH }
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1]
      lastIndex = last.index
      lastHash = last.hash
    } else if (rd.snapshot !== null) {
      lastIndex = rd.snapshot.meta.index
      lastHash = rd.snapshot.meta.hash
    } else if (prev === null) {
      lastIndex = this.raft.lastIndex
      lastHash = this.raft.hashAt(lastIndex) ?? ZERO_HASH
    }
    const hs = rd.hardState ?? {
      term: prev?.term ?? this.raft.currentTerm,
      vote: prev?.vote ?? this.raft.status().vote
    }
    // Synced only when the term or vote changes (storage/promise-file.ts): one fsync per batch, not two.
    const sync = prev === null || prev.term !== hs.term || prev.vote !== hs.vote
    return file.write({ term: hs.term, vote: hs.vote, lastIndex, lastHash }, sync)
  }

  /** Forgets the preparations of entries from `index` on (replaced in the log; never applied). */
  private forgetPreparing(index: number): void {
    for (const i of this.preparing.keys()) if (i >= index) this.preparing.delete(i)
  }

  private startPreparing(entries: readonly Entry[]): void {
    const prepare = this.options.prepareApply
    if (prepare === undefined) return
    // Only pool entries (version, kind and a payload) carry signatures; a noop is empty.
    const todo = entries.filter(
      (e) => e.type === 'normal' && e.data.length > ENTRY_HEADER_BYTES && !this.preparing.has(e.index)
    )
    if (todo.length === 0) return
    const work = prepare(todo).catch((err: unknown) => {
      this.options.logger.warn(
        { err: (err as Error).message },
        'preparing entries failed; the board verifies them itself'
      )
    })
    for (const e of todo) this.preparing.set(e.index, work)
  }

  /** Waits for the preparation of `entries` (starting what was not started). */
  private async prepared(entries: readonly Entry[]): Promise<void> {
    if (this.options.prepareApply === undefined || entries.length === 0) return
    this.startPreparing(entries)
    const works = new Set<Promise<void>>()
    for (const e of entries) {
      const w = this.preparing.get(e.index)
      if (w !== undefined) works.add(w)
      this.preparing.delete(e.index)
    }
    await Promise.all(works)
  }

  /** Applies committed entries to the board state in memory; returns the records to write. */
  private async applyInMemory(entries: readonly Entry[]): Promise<BatchOp[]> {
    if (entries.length === 0) return []
    const last = entries[entries.length - 1].index
    assert(entries[0].index === this.applied + 1, `applying ${entries[0].index} after ${this.applied}`)
    const ops = await this.options.applier.apply(entries)
    ops.push(this.options.store.appliedOp(last))
    this.applied = last
    return ops
  }

  /** Answers the proposals among `entries` (now durable and applied): committed as proposed, or replaced. */
  private answerProposals(entries: readonly Entry[]): void {
    for (const e of entries) {
      const w = this.proposals.get(e.index)
      if (w === undefined) continue
      this.proposals.delete(e.index)
      this.clock.clearTimeout(w.timer)
      if (e.term === w.term) w.resolve({ index: e.index, term: e.term })
      else
        w.reject(
          new BoardError(
            'superseded',
            `entry ${e.index} was replaced by a new leader's entry before it committed; propose it again`
          )
        )
    }
  }

  private confirmRead(key: string, index: number): void {
    const w = this.reads.get(key)
    if (w === undefined) return
    this.reads.delete(key)
    this.confirmedReads.push({ index, waiter: w })
  }

  private releaseReads(): void {
    for (let i = this.confirmedReads.length - 1; i >= 0; i--) {
      const r = this.confirmedReads[i]
      if (r.index > this.readableApplied) continue
      this.confirmedReads.splice(i, 1)
      this.clock.clearTimeout(r.waiter.timer)
      r.waiter.resolve(r.index)
    }
  }

  private raiseAlarm(alarm: Alarm): void {
    if (alarm.kind === 'committed-entry-conflict' && !this.shunned.has(alarm.from) && this.shunned.size < MAX_SHUNNED) {
      // A member that offered to rewrite an entry this node knows is committed has proved it lies
      // about the log (an honest cluster never does this: docs/raft.md). This node stops following
      // it and will not vote for it, so an honest majority elects around it instead of the board
      // staying stuck under a leader whose appends are all refused.
      this.shunned.add(alarm.from)
      this.options.logger.error(
        { member: alarm.from, term: alarm.term },
        'board: no longer following or voting for a member that offered to rewrite committed entries'
      )
    }
    this.alarmCount++
    this.recentAlarms.push({ ...alarm, at: this.clock.isoTime() })
    if (this.recentAlarms.length > MAX_RECENT_ALARMS) this.recentAlarms.shift()
    const key = `${alarm.kind} ${alarm.from}`
    if (alarm.kind === 'commit-beyond-log') {
      // Most likely this node's own store lost writes: not the sender's fault (docs/raft.md).
      this.alarmLog.log(
        'error',
        key,
        { alarm: alarm.kind, from: alarm.from, term: alarm.term, commit: alarm.commit, lastIndex: alarm.lastIndex },
        'board alarm: the leader says this node holds entries it does not (lost writes?)'
      )
    } else {
      const proof =
        alarm.kind === 'committed-entry-conflict'
          ? {
              index: alarm.index,
              localTerm: alarm.localTerm,
              localHash: toHex(alarm.localHash),
              offeredTerm: alarm.offeredTerm,
              offeredHash: toHex(alarm.offeredHash)
            }
          : alarm.kind === 'invalid-append'
            ? { index: alarm.index, reason: alarm.reason }
            : { type: alarm.type, reason: alarm.reason }
      this.alarmLog.log(
        'error',
        key,
        { alarm: alarm.kind, from: alarm.from, term: alarm.term, ...proof },
        alarm.kind === 'refused-message'
          ? "board alarm: refused a member's frame no honest member sends"
          : 'board alarm: a member offered a log that conflicts with what this node knows'
      )
      // A conflict with a committed entry has its own answer (shunned, above); it stays out of the
      // throttle so that the lab's coalitions keep playing as before.
      if (alarm.kind !== 'committed-entry-conflict') this.refusedFrom(alarm.from)
    }
    this.options.onAlarm?.(alarm)
  }

  private refusedFrom(member: NodeId): void {
    const change = this.quarantine.refused(member)
    if (change === 'throttled')
      this.options.logger.warn({ member }, 'board: throttling a member whose frames keep being refused')
    if (change === 'quarantined')
      this.options.logger.warn(
        { member },
        'board: dropping every frame of a member whose frames keep being refused, for a while'
      )
  }

  /**
   * The core asks to send a snapshot to a member whose next entry is compacted away: send it the
   * committed history it lacks (after its match index), one transfer per member at a time.
   */
  private sendSnapshot(m: SnapMessage): void {
    if (this.snapshotsSending.has(m.to)) return
    this.snapshotsSending.add(m.to)
    const match = this.raft.status().progress?.[m.to]?.match ?? 0
    const firstIndex = Math.min(match + 1, m.snapshot.meta.index)
    this.options.store
      .readEntries(firstIndex, m.snapshot.meta.index)
      .then((entries) => {
        if (this.stopped) return
        this.options.logger.info(
          { to: m.to, firstIndex, lastIndex: m.snapshot.meta.index },
          'sending a snapshot of the board history'
        )
        this.options.transport.send({
          ...m,
          snapshot: { meta: m.snapshot.meta, data: encodeHistory(entries, firstIndex) }
        })
      })
      .catch((err: unknown) => {
        this.options.logger.error({ to: m.to, err }, 'could not read the history for a snapshot')
      })
      .finally(() => {
        this.snapshotsSending.delete(m.to)
      })
  }

  private async maybeCompact(): Promise<void> {
    const snapshotIndex = this.raft.snapshotMeta().index
    if (this.applied - snapshotIndex < this.options.snapshotEveryEntries) return
    const meta = this.raft.compact(this.applied, EMPTY)
    if (meta !== null) await this.options.store.saveSnapshotMeta(meta)
  }
}

/**
 * Compares what the store holds with what this node promised. A higher promised term (and its
 * vote) is taken over, so the node never votes twice in a term; a last entry the store no longer
 * holds (and has not committed past) is reported as missing: the node then holds its votes.
 */
export function checkPromises(
  persisted: PersistedState,
  promise: BoardPromise | null
): { persisted: PersistedState; missing: string | null } {
  if (promise === null) return { persisted, missing: null }
  const missing: string[] = []
  let hs = persisted.hardState
  if (promise.term > hs.term) {
    missing.push(`term ${promise.term} and its vote; the store has term ${hs.term}`)
    hs = { ...hs, term: promise.term, vote: promise.vote }
  }
  const meta = persisted.snapshot.meta
  const lastStored = meta.index + persisted.entries.length
  const at = promise.lastIndex
  const storedHash =
    at === meta.index
      ? meta.hash
      : at > meta.index && at <= lastStored
        ? persisted.entries[at - meta.index - 1].hash
        : null
  const entriesMissing = at > hs.commit && (storedHash === null || !equalBytes(storedHash, promise.lastHash))
  if (entriesMissing) missing.push(`entries up to ${at}; the store holds up to ${lastStored}, committed ${hs.commit}`)
  return { persisted: { ...persisted, hardState: hs }, missing: missing.length === 0 ? null : missing.join('; ') }
}
