// Deterministic simulation of a Raft cluster: one process, a seeded PRNG, a simulated clock,
// network and disk. Faults: message drop, delay, duplication and reordering; symmetric, isolating
// and one-way partitions; crashes that lose unsynced writes (also right before and right after a
// sync); process pauses; slow disks. Workload: client proposals, read-index requests, membership
// changes, leadership transfers, log compaction.
//
// Safety is checked after every step (one event: a delivery, a tick, a disk sync, a client call,
// a fault). A run ends with a quiet phase (faults off, every node up) in which a leader must be
// elected and every client request committed within a bounded number of ticks.

import { equalBytes, toHex } from '../../protocol/bytes.js'
import {
  bootstrapState,
  computeEntryHash,
  joiningState,
  ProposalError,
  quorumSize,
  type Configuration,
  type ConfChange,
  type Entry,
  type Message,
  type NodeId,
  type Raft,
  type RaftConfig,
  type Ready,
  type Role,
  type VoteAuthority,
  type AckClaim
} from '../../board/raft/index.js'
import { raftFactory, type PlantedBug, type RaftFactory } from './bugs.js'
import { CommittedLog, Violation } from './committed.js'
import { SimDisk, type Batch, type DurableState } from './disk.js'
import { EventHeap } from './heap.js'
import { Prng } from './prng.js'

/** Simulated time units per tick. Message delays and disk latencies are in units. */
const TICK_UNITS = 10

/** Messages a driver may send before the Ready's batch is synced (see docs/raft.md). */
const LEADER_MESSAGES: ReadonlySet<Message['type']> = new Set([
  'app',
  'heartbeat',
  'snap',
  'timeoutNow',
  'readIndexResp'
])

export interface SimOptions {
  readonly seed: number
  /** Voters of the initial cluster. */
  readonly nodes: number
  /** Steps (events) in the fault phase; the quiet phase follows. */
  readonly steps: number
  /** A planted bug to run with (tests only). */
  readonly bug?: PlantedBug | null
  /** Number of trailing events kept for the failure trace (default 50). */
  readonly traceEvents?: number
  /** Return the trace even when the run passes. */
  readonly alwaysTrace?: boolean
}

export interface SimStats {
  elections: number
  maxTerm: number
  committed: number
  crashes: number
  partitions: number
  confChanges: number
  transfers: number
  snapshotsInstalled: number
  compactions: number
  readsServed: number
  requests: number
  messagesDelivered: number
}

export interface SimResult {
  readonly seed: number
  readonly ok: boolean
  /** Events processed. */
  readonly steps: number
  /** Simulated ticks. */
  readonly ticks: number
  readonly failure: string | null
  readonly trace: readonly string[]
  readonly stats: SimStats
  /** Parameters drawn for this seed (for the failure report). */
  readonly params: string
}

export { Violation }

/** Per-run parameters, all drawn from the seed. */
interface Params {
  raft: Omit<RaftConfig, 'id' | 'rand'>
  dropRate: number
  dupRate: number
  maxDelayUnits: number
  longDelayRate: number
  faultIntervalUnits: number
  crashBeforeSyncRate: number
  crashAfterSyncRate: number
  crashAfterVoteRate: number
  slowDiskRate: number
  compactEvery: number
  compactTrailing: number
  clientIntervalUnits: number
  readIntervalUnits: number
  memberIntervalUnits: number
  transferIntervalUnits: number
  payloadMaxBytes: number
  /** 'churn' keeps knocking out whichever node leads (isolation, kill and quick restart). */
  nemesis: 'mixed' | 'churn'
  /** The driver sends a leader's own messages (appends, heartbeats...) before its batch is synced. */
  leaderSendsEarly: boolean
  /**
   * The driver writes a batch that only raises the commit index without syncing it, and goes on at
   * once (daemon/replica/board.ts and storage/raft-store.ts do): a crash may lose it, never a later synced one.
   */
  commitOnlyUnsynced: boolean
  /** Votes are signed and leaders prove their term with an election certificate (docs/raft.md). */
  signedVotes: boolean
}

function drawParams(rng: Prng): Params {
  const electionTicks = rng.range(5, 12)
  const heartbeatTicks = rng.range(1, Math.min(3, Math.floor(electionTicks / 2)))
  const maxMessageBytes = rng.pick([1, 200, 1000, 1 << 20])
  const p: Params = {
    raft: {
      electionTicks,
      heartbeatTicks,
      preVote: rng.chance(0.85),
      checkQuorum: rng.chance(0.85),
      verifyHashChain: rng.chance(0.8),
      maxMessageBytes,
      maxInflightMsgs: rng.pick([1, 2, 8, 256]),
      maxInflightBytes: Math.max(maxMessageBytes, rng.pick([500, 1 << 20])),
      maxUncommittedBytes: rng.pick([300, 3000, 1 << 20]),
      maxEntryBytes: 1 << 16,
      maxCommittedBytesPerReady: rng.pick([100, 1 << 20]),
      maxPendingReads: rng.pick([4, 4096]),
      snapshotTimeoutTicks: electionTicks * rng.range(2, 5)
    },
    dropRate: rng.pick([0, 0.01, 0.05, 0.15]),
    dupRate: rng.pick([0, 0.01, 0.05]),
    maxDelayUnits: rng.pick([2, 8, 20]),
    longDelayRate: rng.pick([0, 0.01, 0.05]),
    faultIntervalUnits: rng.pick([60, 150, 400]),
    crashBeforeSyncRate: rng.pick([0, 0.002, 0.01]),
    crashAfterSyncRate: rng.pick([0, 0.002, 0.01]),
    crashAfterVoteRate: rng.pick([0, 0.05, 0.2]),
    slowDiskRate: rng.pick([0, 0.1, 0.3]),
    compactEvery: rng.pick([0, 4, 10, 30]),
    compactTrailing: rng.pick([0, 2, 8]),
    clientIntervalUnits: rng.pick([3, 10, 30]),
    readIntervalUnits: rng.pick([20, 60]),
    memberIntervalUnits: rng.pick([150, 400, 1000]),
    transferIntervalUnits: rng.pick([200, 600, 2000]),
    payloadMaxBytes: rng.pick([8, 64, 200]),
    nemesis: 'mixed',
    leaderSendsEarly: rng.chance(0.5),
    commitOnlyUnsynced: rng.chance(0.5),
    signedVotes: false
  }
  if (rng.chance(0.4)) {
    // Short election timeouts: many leaderships per run.
    p.nemesis = 'churn'
    const e = rng.range(3, 6)
    p.raft = { ...p.raft, electionTicks: e, heartbeatTicks: 1, snapshotTimeoutTicks: 3 * e }
    p.faultIntervalUnits = rng.pick([15, 30, 60])
  }
  // Drawn last, so that the other parameters of a seed stay what they were before it existed.
  p.signedVotes = rng.chance(0.5)
  return p
}

/**
 * Signed votes inside the simulator: a "signature" is the vote's text, which only its voter
 * produces here (no member of the simulator forges). What is tested is that honest elections
 * always gather and pass their certificates, under every fault.
 */
/** A simulated acknowledgement signature: its signer and claim (a liar lies in its own name only). */
function ackText(voter: NodeId, ack: AckClaim): Uint8Array {
  const head = new TextEncoder().encode(`${voter}:${ack.term}:${ack.index}:${ack.locked}:`)
  const out = new Uint8Array(head.length + 8)
  out.set(head, 0)
  out.set(ack.hash.subarray(0, 8), head.length)
  return out
}

export function simVotes(self: NodeId): VoteAuthority {
  const text = (voter: NodeId, term: number, candidate: NodeId): Uint8Array =>
    new TextEncoder().encode(`${voter}>${candidate}@${term}`)
  return {
    sign: (term, candidate) => text(self, term, candidate),
    verify: (voter, term, candidate, signature) => {
      const expected = text(voter, term, candidate)
      return signature.length === expected.length && signature.every((b, i) => b === expected[i])
    },
    signAck: (ack) => ackText(self, ack),
    verifyAck: (voter, ack, signature) => {
      const expected = ackText(voter, ack)
      return signature.length === expected.length && signature.every((b, i) => b === expected[i])
    }
  }
}

function describeParams(p: Params): string {
  const r = p.raft
  return (
    `election=${r.electionTicks} heartbeat=${r.heartbeatTicks} preVote=${r.preVote} checkQuorum=${r.checkQuorum} ` +
    `verifyHashChain=${r.verifyHashChain} maxMsg=${r.maxMessageBytes} inflight=${r.maxInflightMsgs} ` +
    `uncommitted=${r.maxUncommittedBytes} drop=${p.dropRate} dup=${p.dupRate} delay<=${p.maxDelayUnits} ` +
    `faultEvery=${p.faultIntervalUnits} nemesis=${p.nemesis} compactEvery=${p.compactEvery} leaderSendsEarly=${p.leaderSendsEarly} commitOnlyUnsynced=${p.commitOnlyUnsynced} signedVotes=${p.signedVotes}`
  )
}

// ---------------------------------------------------------------------------------------------

type Ev = { time: number; seq: number } & (
  | { kind: 'deliver'; msg: Message }
  | { kind: 'tick'; node: SimNode; epoch: number }
  | { kind: 'sync'; node: SimNode; epoch: number }
  | { kind: 'restart'; node: SimNode; epoch: number }
  | { kind: 'unpause'; node: SimNode; epoch: number }
  | { kind: 'heal'; cuts: readonly string[] }
  | { kind: 'client' }
  | { kind: 'read' }
  | { kind: 'member' }
  | { kind: 'transfer' }
  | { kind: 'fault' }
)

type EvInput = Ev extends infer E ? (E extends Ev ? Omit<E, 'time' | 'seq'> : never) : never

class SimNode {
  raft: Raft | null = null
  alive = false
  paused = false
  decommissioned = false
  /** Bumped at every crash: events scheduled for an earlier life are void. */
  epoch = 0
  /** The Ready whose batch is being synced. */
  syncing: Ready | null = null
  slowDiskUntil = 0
  appliedIndex = 0
  lastRole: Role = 'follower'
  lastTerm = 0
  readonly rng: Prng

  constructor(
    readonly id: NodeId,
    readonly disk: SimDisk,
    rng: Prng
  ) {
    this.rng = rng
  }
}

interface TraceRecord {
  t: number
  text: string | null
  msg: Message | null
  node: string
}

interface ClientRequest {
  id: number
  data: Uint8Array
  committed: boolean
  lastAttempt: number
}

export function runSimulation(opts: SimOptions): SimResult {
  const sim = new Simulation(opts)
  return sim.run()
}

class Simulation {
  private readonly rng: Prng
  private readonly params: Params
  private readonly factory: RaftFactory
  private readonly bug: PlantedBug | null
  private readonly heap = new EventHeap<Ev>()
  private seq = 0
  private now = 0
  private steps = 0
  private phase: 'chaos' | 'quiet' = 'chaos'
  private quietDeadline = 0
  /** A run that takes this many steps is stuck in a message storm. */
  private readonly stepLimit: number
  private readonly nodes = new Map<NodeId, SimNode>()
  private nextNodeNumber = 1
  /** Directed cut links "from>to" with a reference count (overlapping partitions). */
  private readonly cuts = new Map<string, number>()
  /** Nodes the churn nemesis keeps cut off, with their cut links. */
  private readonly isolated = new Map<NodeId, string[]>()

  // Checker state.
  /**
   * What is known committed: log.terms[i] is the term in which index i was committed (exact when
   * seen on the leader; an upper bound when first learned otherwise).
   */
  private readonly log = new CommittedLog()
  private readonly seenEntries = new Map<number, Entry[]>()
  private readonly chainChecked = new WeakMap<Entry, Uint8Array>()
  private readonly requests = new Map<number, ClientRequest>()
  private readonly pendingRequests: number[] = []
  private nextRequestId = 1
  private quietNewRequests = 0
  private readonly reads = new Map<string, { node: NodeId; minIndex: number }>()
  private nextReadId = 1

  private readonly trace: TraceRecord[] = []
  private readonly traceLength: number
  private traceAt = 0
  readonly stats: SimStats = {
    elections: 0,
    maxTerm: 0,
    committed: 0,
    crashes: 0,
    partitions: 0,
    confChanges: 0,
    transfers: 0,
    snapshotsInstalled: 0,
    compactions: 0,
    readsServed: 0,
    requests: 0,
    messagesDelivered: 0
  }

  constructor(private readonly opts: SimOptions) {
    this.rng = new Prng(opts.seed)
    this.params = drawParams(this.rng.fork())
    this.bug = opts.bug ?? null
    this.factory = raftFactory(this.bug)
    this.traceLength = opts.traceEvents ?? 50
    this.stepLimit = Math.max(60 * opts.steps, 100_000)
    const ids: NodeId[] = []
    for (let i = 0; i < opts.nodes; i++) ids.push(this.newNodeId())
    const initial: Configuration = { voters: ids, learners: [] }
    for (const id of ids) this.addNode(id, bootstrapState(initial))
  }

  run(): SimResult {
    let failure: string | null = null
    try {
      this.schedule(this.params.clientIntervalUnits, { kind: 'client' })
      this.schedule(this.params.readIntervalUnits, { kind: 'read' })
      this.schedule(this.params.faultIntervalUnits, { kind: 'fault' })
      if (this.opts.nodes >= 3) this.schedule(this.params.memberIntervalUnits, { kind: 'member' })
      this.schedule(this.params.transferIntervalUnits, { kind: 'transfer' })
      for (;;) {
        const ev = this.heap.pop()
        if (ev === undefined) throw new Violation('event queue ran dry')
        this.now = ev.time
        this.steps++
        this.process(ev)
        this.checkStep()
        if (this.phase === 'chaos' && this.steps >= this.opts.steps) this.startQuiet()
        if (this.steps > this.stepLimit) {
          throw new Violation(
            `liveness: more than ${this.stepLimit} steps (${this.steps - this.opts.steps} after faults stopped): a message storm?`
          )
        }
        if (this.phase === 'quiet' && this.steps % 16 === 0) {
          const missing = this.convergenceProblem()
          if (missing === null) break
          if (this.now >= this.quietDeadline) {
            throw new Violation(
              `liveness: not converged ${Math.round((this.now - this.quietDeadline) / TICK_UNITS + this.quietTicks())} ticks after faults stopped: ${missing}`
            )
          }
        }
      }
    } catch (err) {
      if (err instanceof Violation) failure = err.message
      else failure = `exception: ${(err as Error).stack ?? String(err)}`
    }
    return {
      seed: this.opts.seed,
      ok: failure === null,
      steps: this.steps,
      ticks: Math.floor(this.now / TICK_UNITS),
      failure,
      trace: failure === null && this.opts.alwaysTrace !== true ? [] : this.formatTrace(),
      stats: this.stats,
      params: describeParams(this.params)
    }
  }

  // ===========================================================================================
  // Nodes

  private newNodeId(): NodeId {
    return `n${this.nextNodeNumber++}`
  }

  private addNode(id: NodeId, initial: ReturnType<typeof bootstrapState>): SimNode {
    const node: SimNode = new SimNode(
      id,
      new SimDisk(initial, this.bug === 'vote-not-persisted' ? 'vote-not-persisted' : null, (b, d) =>
        this.checkDurable(node, b, d)
      ),
      this.rng.fork()
    )
    this.nodes.set(id, node)
    this.start(node)
    return node
  }

  private raftConfig(node: SimNode): RaftConfig {
    const rng = node.rng
    const votes = this.params.signedVotes ? simVotes(node.id) : null
    return { ...this.params.raft, id: node.id, rand: (n) => rng.int(n), votes }
  }

  private start(node: SimNode): void {
    node.raft = this.factory(this.raftConfig(node), node.disk.load())
    node.alive = true
    node.paused = false
    node.syncing = null
    const snap = node.disk.durable.snapshot
    node.appliedIndex = snap.meta.index
    node.lastRole = 'follower'
    node.lastTerm = node.raft.currentTerm
    // Ticks start at a random phase so nodes do not tick in lockstep.
    this.schedule(1 + this.rng.int(TICK_UNITS), { kind: 'tick', node, epoch: node.epoch })
  }

  /** restartAfterUnits: when to bring it back (default: a random 3..40 ticks). */
  private crash(node: SimNode, why: string, restartAfterUnits?: number): void {
    if (!node.alive) return
    node.alive = false
    node.raft = null
    node.syncing = null
    node.epoch++
    node.disk.crash()
    this.stats.crashes++
    this.record(node.id, `CRASH (${why})`)
    if (this.phase === 'chaos') {
      const after = restartAfterUnits ?? this.rng.range(3, 40) * TICK_UNITS
      this.schedule(after, { kind: 'restart', node, epoch: node.epoch })
    }
  }

  private restart(node: SimNode): void {
    if (node.alive || node.decommissioned) return
    this.start(node)
    this.record(
      node.id,
      `RESTART term=${node.raft!.currentTerm} last=${node.raft!.lastIndex} commit=${node.raft!.commitIndex}`
    )
  }

  // ===========================================================================================
  // Events

  private schedule(delayUnits: number, ev: EvInput): void {
    const e = ev as Ev
    e.time = this.now + Math.max(1, Math.round(delayUnits))
    e.seq = this.seq++
    this.heap.push(e)
  }

  private process(ev: Ev): void {
    switch (ev.kind) {
      case 'deliver':
        this.deliver(ev.msg)
        break
      case 'tick': {
        const node = ev.node
        if (ev.epoch !== node.epoch || !node.alive) return
        this.schedule(TICK_UNITS, { kind: 'tick', node, epoch: node.epoch })
        if (node.paused) return
        node.raft!.tick()
        this.pump(node)
        break
      }
      case 'sync':
        if (ev.epoch !== ev.node.epoch || !ev.node.alive) return
        this.completeReady(ev.node)
        break
      case 'restart':
        if (ev.epoch !== ev.node.epoch) return
        this.restart(ev.node)
        break
      case 'unpause':
        if (ev.epoch !== ev.node.epoch || !ev.node.alive) return
        ev.node.paused = false
        this.record(ev.node.id, 'UNPAUSE')
        this.pump(ev.node)
        break
      case 'heal':
        for (const c of ev.cuts) this.uncut(c)
        this.record('-', `HEAL ${ev.cuts.join(' ')}`)
        break
      case 'client':
        this.clientStep()
        this.schedule(1 + this.rng.int(this.params.clientIntervalUnits * 2), { kind: 'client' })
        break
      case 'read':
        this.readStep()
        this.schedule(1 + this.rng.int(this.params.readIntervalUnits * 2), { kind: 'read' })
        break
      case 'member':
        if (this.phase !== 'chaos') return
        this.memberStep()
        this.schedule(1 + this.rng.int(this.params.memberIntervalUnits * 2), { kind: 'member' })
        break
      case 'transfer':
        if (this.phase !== 'chaos') return
        this.transferStep()
        this.schedule(1 + this.rng.int(this.params.transferIntervalUnits * 2), { kind: 'transfer' })
        break
      case 'fault':
        if (this.phase !== 'chaos') return
        this.faultStep()
        this.schedule(1 + this.rng.int(this.params.faultIntervalUnits * 2), { kind: 'fault' })
        break
    }
  }

  // ===========================================================================================
  // Driver: Ready handling with a simulated disk

  /** Handles Readies until none is left or one waits for its disk sync. */
  private pump(node: SimNode): void {
    while (node.alive && !node.paused && node.syncing === null && node.raft!.hasReady()) {
      const rd = node.raft!.ready()
      node.syncing = rd
      const mustWrite = rd.hardState !== null || rd.entries.length > 0 || rd.snapshot !== null
      if (this.bug === 'ack-before-persist') this.sendAll(rd.messages)
      else if (mustWrite && this.params.leaderSendsEarly) {
        // Allowed by the contract: what a leader sends does not depend on its own durability.
        for (const m of rd.messages) if (LEADER_MESSAGES.has(m.type)) this.send(m)
      }
      if (mustWrite && this.params.commitOnlyUnsynced && this.onlyRaisesCommit(node, rd)) {
        node.disk.write({ hardState: rd.hardState, entries: rd.entries, snapshot: rd.snapshot })
        this.completeReady(node, false)
        continue
      }
      if (mustWrite) {
        const batch: Batch = { hardState: rd.hardState, entries: rd.entries, snapshot: rd.snapshot }
        node.disk.write(batch)
        if (this.phase === 'chaos' && this.rng.chance(this.params.crashBeforeSyncRate)) {
          this.crash(node, 'before sync')
          return
        }
        const latency = this.diskLatency(node)
        if (latency > 0) {
          this.schedule(latency, { kind: 'sync', node, epoch: node.epoch })
          return
        }
      }
      this.completeReady(node)
    }
  }

  private diskLatency(node: SimNode): number {
    if (node.slowDiskUntil > this.now) return this.rng.range(TICK_UNITS, 8 * TICK_UNITS)
    return this.rng.chance(0.5) ? 0 : this.rng.range(1, 4)
  }

  /** A Ready with no entries, no snapshot, and the same term and vote as written before. */
  private onlyRaisesCommit(node: SimNode, rd: Ready): boolean {
    if (rd.entries.length > 0 || rd.snapshot !== null || rd.hardState === null) return false
    const written = node.disk.writtenHardState()
    return rd.hardState.term === written.term && rd.hardState.vote === written.vote
  }

  /** The batch is synced (or, for a commit-only batch, written without a sync): now send, apply, advance. */
  private completeReady(node: SimNode, sync = true): void {
    const rd = node.syncing!
    if (sync) node.disk.sync()
    if (this.phase === 'chaos' && rd.messages.length > 0 && this.rng.chance(this.params.crashAfterSyncRate)) {
      this.crash(node, 'after sync, before send')
      return
    }
    const raft = node.raft!
    if (rd.softState !== null) {
      this.record(
        node.id,
        `becomes ${rd.softState.role} (term ${raft.currentTerm}, leader ${rd.softState.leader ?? '-'})`
      )
    }
    if (this.bug !== 'ack-before-persist') {
      const early =
        this.params.leaderSendsEarly && (rd.hardState !== null || rd.entries.length > 0 || rd.snapshot !== null)
      for (const m of rd.messages) if (!early || !LEADER_MESSAGES.has(m.type)) this.send(m)
    }
    if (rd.alarms.length > 0) {
      const a = rd.alarms[0]!
      throw new Violation(
        `alarm in an honest run on ${node.id}: ${JSON.stringify(a, (_k, v) => (v instanceof Uint8Array ? toHex(v).slice(0, 12) : v))}`
      )
    }
    if (rd.snapshot !== null)
      this.installSnapshot(node, rd.snapshot.meta.index, rd.snapshot.meta.hash, rd.snapshot.data)
    if (rd.committedEntries.length > 0) {
      for (const e of rd.committedEntries) this.apply(node, e)
      const first = rd.committedEntries[0]!.index
      const last = rd.committedEntries[rd.committedEntries.length - 1]!.index
      this.record(node.id, `applies ${first}..${last}`)
    }
    for (const rs of rd.readStates) this.checkRead(node, rs.index, rs.context)
    node.syncing = null
    raft.advance(rd)
    if (
      this.phase === 'chaos' &&
      rd.hardState !== null &&
      rd.hardState.vote !== null &&
      rd.hardState.vote !== node.id &&
      this.rng.chance(this.params.crashAfterVoteRate)
    ) {
      // Failpoint: killed right after persisting and sending a vote, back at once.
      this.crash(node, 'right after voting', this.rng.range(1, 10))
      return
    }
    this.maybeCompact(node)
    this.pump(node)
  }

  private sendAll(msgs: readonly Message[]): void {
    for (const m of msgs) this.send(m)
  }

  // ===========================================================================================
  // Network

  private send(m: Message): void {
    if (this.cuts.has(`${m.from}>${m.to}`)) return
    const p = this.params
    const chaos = this.phase === 'chaos'
    if (chaos && this.rng.chance(p.dropRate)) return
    this.schedule(this.delay(), { kind: 'deliver', msg: m })
    if (chaos && this.rng.chance(p.dupRate)) this.schedule(this.delay(), { kind: 'deliver', msg: m })
  }

  private delay(): number {
    if (this.phase === 'quiet') return this.rng.range(1, 4)
    if (this.rng.chance(this.params.longDelayRate)) return this.rng.range(TICK_UNITS, 15 * TICK_UNITS)
    return this.rng.range(1, this.params.maxDelayUnits)
  }

  private deliver(m: Message): void {
    const node = this.nodes.get(m.to)
    if (node === undefined || !node.alive) return
    if (this.cuts.has(`${m.from}>${m.to}`)) return // the partition began while it was in flight
    if (node.paused) {
      this.schedule(TICK_UNITS, { kind: 'deliver', msg: m }) // queued until the process resumes
      return
    }
    this.stats.messagesDelivered++
    this.recordMsg(node.id, m)
    node.raft!.step(m)
    this.pump(node)
  }

  private cut(from: NodeId, to: NodeId): string {
    const key = `${from}>${to}`
    this.cuts.set(key, (this.cuts.get(key) ?? 0) + 1)
    return key
  }

  private uncut(key: string): void {
    const n = this.cuts.get(key) ?? 0
    if (n <= 1) this.cuts.delete(key)
    else this.cuts.set(key, n - 1)
  }

  // ===========================================================================================
  // Workload

  private liveNodes(): SimNode[] {
    const out: SimNode[] = []
    for (const n of this.nodes.values()) if (n.alive) out.push(n)
    return out
  }

  /** The live leader with the highest term, if any. */
  private currentLeader(): SimNode | null {
    let best: SimNode | null = null
    for (const n of this.nodes.values()) {
      if (!n.alive || n.raft!.currentRole !== 'leader') continue
      if (best === null || n.raft!.currentTerm > best.raft!.currentTerm) best = n
    }
    return best
  }

  private clientStep(): void {
    // Retry the oldest request that has waited long enough, else issue a new one.
    const retryUnits = 3 * this.params.raft.electionTicks! * TICK_UNITS
    let req: ClientRequest | undefined
    while (this.pendingRequests.length > 0 && this.requests.get(this.pendingRequests[0]!)!.committed)
      this.pendingRequests.shift()
    for (const id of this.pendingRequests) {
      const r = this.requests.get(id)!
      if (!r.committed && this.now - r.lastAttempt >= retryUnits) {
        req = r
        break
      }
    }
    if (req === undefined) {
      if (this.phase === 'quiet' && this.quietNewRequests >= 3) return
      if (this.phase === 'quiet') this.quietNewRequests++
      const id = this.nextRequestId++
      const data = new Uint8Array(4 + this.rng.int(this.params.payloadMaxBytes))
      new DataView(data.buffer).setUint32(0, id)
      req = { id, data, committed: false, lastAttempt: this.now }
      this.requests.set(id, req)
      this.pendingRequests.push(id)
      this.stats.requests++
    }
    req.lastAttempt = this.now
    const live = this.liveNodes()
    if (live.length === 0) return
    const leader = this.currentLeader()
    // Clients look for the leader; now and then one asks a random node (and is redirected), or a
    // node that still believes it leads an older term.
    if (leader === null && !this.rng.chance(0.1)) return
    let target = leader !== null && !this.rng.chance(0.1) ? leader : this.rng.pick(live)
    if (this.rng.chance(0.3)) {
      const leaders = live.filter((n) => n.raft!.currentRole === 'leader')
      if (leaders.length > 1) target = this.rng.pick(leaders)
    }
    try {
      const r = target.raft!.propose(req.data)
      this.record(target.id, `propose req#${req.id} -> index ${r.index} term ${r.term}`)
    } catch (err) {
      if (!(err instanceof ProposalError)) throw err
      this.record(target.id, `propose req#${req.id} refused: ${err.reason}`)
    }
    this.pump(target)
  }

  private readStep(): void {
    const live = this.liveNodes().filter((n) => !n.paused)
    if (live.length === 0) return
    const node = this.rng.pick(live)
    if (node.raft!.leaderId === null && !this.rng.chance(0.1)) return
    const ctx = new Uint8Array(4)
    new DataView(ctx.buffer).setUint32(0, this.nextReadId++)
    // Everything known committed anywhere before the request must be visible to the read.
    let minIndex = this.log.lastIndex
    for (const n of live) minIndex = Math.max(minIndex, n.raft!.commitIndex)
    try {
      node.raft!.readIndex(ctx)
      this.reads.set(toHex(ctx), { node: node.id, minIndex })
      this.record(node.id, `readIndex #${this.nextReadId - 1} (must see >= ${minIndex})`)
    } catch (err) {
      if (!(err instanceof ProposalError)) throw err
    }
    this.pump(node)
  }

  private checkRead(node: SimNode, index: number, context: Uint8Array): void {
    const key = toHex(context)
    const r = this.reads.get(key)
    if (r === undefined) return
    this.reads.delete(key)
    this.stats.readsServed++
    this.record(node.id, `read state index ${index} (needs >= ${r.minIndex})`)
    if (index < r.minIndex) {
      throw new Violation(
        `linearizability: read on ${node.id} got index ${index}, but index ${r.minIndex} was committed before the read was requested`
      )
    }
  }

  private transferStep(): void {
    const leader = this.currentLeader()
    if (leader === null) return
    const voters = leader.raft!.configuration().voters.filter((v) => v !== leader.id)
    if (voters.length === 0) return
    const to = this.rng.pick(voters)
    try {
      leader.raft!.transferLeadership(to)
      this.stats.transfers++
      this.record(leader.id, `transferLeadership -> ${to}`)
    } catch (err) {
      if (!(err instanceof ProposalError)) throw err
    }
    this.pump(leader)
  }

  private memberStep(): void {
    this.decommissionRemoved()
    const leader = this.currentLeader()
    if (leader === null) return
    const config = leader.raft!.configuration()
    const minVoters = Math.min(3, this.opts.nodes)
    const maxMembers = this.opts.nodes + 2
    const options: ConfChange[] = []
    for (const l of config.learners) options.push({ kind: 'promoteLearner', node: l }, { kind: 'removeNode', node: l })
    if (config.voters.length > minVoters) {
      for (const v of config.voters) options.push({ kind: 'removeNode', node: v }, { kind: 'demoteVoter', node: v })
    }
    let newcomer: NodeId | null = null
    if (config.voters.length + config.learners.length < maxMembers) {
      newcomer = `n${this.nextNodeNumber}`
      options.push({ kind: 'addLearner', node: newcomer }, { kind: 'addLearner', node: newcomer })
    }
    if (options.length === 0) return
    const cc = this.rng.pick(options)
    try {
      leader.raft!.proposeConfChange(cc)
      this.stats.confChanges++
      this.record(leader.id, `proposeConfChange ${cc.kind}(${cc.node})`)
      if (cc.kind === 'addLearner' && cc.node === newcomer) this.addNode(this.newNodeId(), joiningState())
    } catch (err) {
      if (!(err instanceof ProposalError)) throw err
      this.record(leader.id, `proposeConfChange ${cc.kind}(${cc.node}) refused: ${err.reason}`)
    }
    this.pump(leader)
  }

  /** Stops, for good, nodes whose removal is committed (they keep running for a while before). */
  private decommissionRemoved(): void {
    const config = this.log.config
    const removedAt = new Set<NodeId>()
    for (const c of this.log.configs) {
      for (const n of this.nodes.keys())
        if (c.config.voters.includes(n) || c.config.learners.includes(n)) removedAt.add(n)
    }
    for (const node of this.nodes.values()) {
      if (node.decommissioned || !removedAt.has(node.id)) continue // never a member yet: may still be added
      if (config.voters.includes(node.id) || config.learners.includes(node.id)) continue
      if (!this.rng.chance(0.5)) continue
      if (node.alive) this.crash(node, 'decommissioned')
      node.decommissioned = true
      this.record(node.id, 'DECOMMISSIONED')
    }
  }

  private faultStep(): void {
    const ids = [...this.nodes.values()].filter((n) => !n.decommissioned).map((n) => n.id)
    if (this.params.nemesis === 'churn') {
      this.churnStep(ids)
      return
    }
    const roll = this.rng.int(100)
    const healAfter = (): number => this.rng.range(5, 80) * TICK_UNITS
    const leader = this.currentLeader()
    if (roll < 15) {
      const live = this.liveNodes()
      if (live.length > 0) this.crash(this.rng.pick(live), 'fault')
    } else if (roll < 27) {
      // Kill the leader, and often bring it straight back (kill -9 under a supervisor).
      if (leader !== null) this.crash(leader, 'leader fault', this.rng.chance(0.6) ? this.rng.range(1, 30) : undefined)
    } else if (roll < 35) {
      const live = this.liveNodes()
      if (live.length > 0) this.crash(this.rng.pick(live), 'quick restart', this.rng.range(1, 20))
    } else if (roll < 48) {
      // Symmetric partition into two random groups.
      const side = new Set(ids.filter(() => this.rng.chance(0.5)))
      const cuts: string[] = []
      for (const a of ids) for (const b of ids) if (side.has(a) !== side.has(b)) cuts.push(this.cut(a, b))
      this.stats.partitions++
      this.record('-', `PARTITION {${[...side].join(',')}} | {${ids.filter((i) => !side.has(i)).join(',')}}`)
      this.schedule(healAfter(), { kind: 'heal', cuts })
    } else if (roll < 62) {
      // Isolate one node, often the leader (it may keep believing it leads for a while).
      const victim = leader !== null && this.rng.chance(0.6) ? leader.id : this.rng.pick(ids)
      const cuts: string[] = []
      for (const b of ids) if (b !== victim) cuts.push(this.cut(victim, b), this.cut(b, victim))
      this.stats.partitions++
      this.record(victim, 'ISOLATED')
      this.schedule(healAfter(), { kind: 'heal', cuts })
    } else if (roll < 72) {
      // One-way link failures.
      const cuts: string[] = []
      const n = this.rng.range(1, 3)
      for (let i = 0; i < n; i++) {
        const a = this.rng.pick(ids)
        const b = this.rng.pick(ids)
        if (a !== b) cuts.push(this.cut(a, b))
      }
      if (cuts.length > 0) {
        this.stats.partitions++
        this.record('-', `ONE-WAY CUT ${cuts.join(' ')}`)
        this.schedule(healAfter(), { kind: 'heal', cuts })
      }
    } else if (roll < 80) {
      const live = this.liveNodes().filter((n) => !n.paused)
      if (live.length > 0) {
        const node = this.rng.pick(live)
        node.paused = true
        this.record(node.id, 'PAUSE')
        this.schedule(this.rng.range(2, 30) * TICK_UNITS, { kind: 'unpause', node, epoch: node.epoch })
      }
    } else if (roll < 88) {
      if (this.rng.chance(this.params.slowDiskRate * 3)) {
        const node = this.rng.pick([...this.nodes.values()])
        node.slowDiskUntil = this.now + this.rng.range(5, 50) * TICK_UNITS
        this.record(node.id, 'SLOW DISK')
      }
    } else {
      // Restart a crashed node early.
      const down = [...this.nodes.values()].filter((n) => !n.alive && !n.decommissioned)
      if (down.length > 0) this.restart(this.rng.pick(down))
    }
  }

  /**
   * Leader churn: cut off whoever leads and leave it cut off, so deposed leaders pile up divergent
   * entries of their terms; reconnect one of them whenever too few nodes remain connected. Now and
   * then kill the leader instead and bring it straight back.
   */
  private churnStep(ids: NodeId[]): void {
    const leader = this.currentLeader()
    let justCut: NodeId | null = null
    if (leader !== null && !this.isolated.has(leader.id)) {
      if (this.rng.chance(0.2)) this.crash(leader, 'churn', this.rng.range(1, 6 * TICK_UNITS))
      else if (this.rng.chance(0.6)) {
        const cuts: string[] = []
        for (const b of ids) if (b !== leader.id) cuts.push(this.cut(leader.id, b), this.cut(b, leader.id))
        this.isolated.set(leader.id, cuts)
        justCut = leader.id
        this.stats.partitions++
        this.record(leader.id, 'ISOLATED (churn)')
      }
    }
    const connected = ids.filter((id) => !this.isolated.has(id)).length
    const candidates = [...this.isolated.keys()].filter((id) => id !== justCut)
    if (candidates.length > 0 && (connected < quorumSize(ids.length) || this.rng.chance(0.15))) {
      const back = this.rng.pick(candidates)
      for (const c of this.isolated.get(back)!) this.uncut(c)
      this.isolated.delete(back)
      this.record(back, 'RECONNECTED (churn)')
    }
    const down = [...this.nodes.values()].filter((n) => !n.alive && !n.decommissioned)
    if (down.length > 0 && this.rng.chance(0.3)) this.restart(this.rng.pick(down))
  }

  private quietTicks(): number {
    return 60 * this.params.raft.electionTicks! + 200
  }

  private startQuiet(): void {
    this.phase = 'quiet'
    this.quietDeadline = this.now + this.quietTicks() * TICK_UNITS
    this.cuts.clear()
    this.isolated.clear()
    this.record('-', 'QUIET PHASE: faults stop, every node comes back')
    for (const node of this.nodes.values()) {
      node.slowDiskUntil = 0
      if (node.decommissioned) continue
      if (!node.alive) this.restart(node)
      else if (node.paused) {
        node.paused = false
        this.pump(node)
      }
    }
  }

  /** Null once the cluster has converged; else what is still missing. */
  private convergenceProblem(): string | null {
    const leader = this.currentLeader()
    if (leader === null) return 'no leader'
    const raft = leader.raft!
    for (const id of this.pendingRequests) {
      if (!this.requests.get(id)!.committed) return `request #${id} not committed`
    }
    const commit = raft.commitIndex
    if (commit !== raft.lastIndex) return `leader ${leader.id} has uncommitted entries (${commit} < ${raft.lastIndex})`
    const config = raft.configuration()
    for (const id of [...config.voters, ...config.learners]) {
      const n = this.nodes.get(id)!
      if (!n.alive) return `member ${id} is down`
      if (n.appliedIndex !== commit) return `member ${id} applied ${n.appliedIndex}, leader committed ${commit}`
    }
    return null
  }

  // ===========================================================================================
  // Application (the replicated state machine) and compaction

  private apply(node: SimNode, e: Entry): void {
    if (e.index !== node.appliedIndex + 1) {
      throw new Violation(`${node.id} applied index ${e.index} after ${node.appliedIndex}`)
    }
    this.recordCommitted(node, e)
    node.appliedIndex = e.index
  }

  private recordCommitted(node: SimNode, e: Entry): void {
    const problem = this.log.appliedProblem(node.id, e)
    if (problem !== null) throw new Violation(problem)
    if (e.index <= this.log.lastIndex) return
    this.log.add(e, node.raft!.currentTerm)
    this.stats.committed = e.index
    if (e.type !== 'confChange' && e.data.length >= 4) {
      const id = new DataView(e.data.buffer, e.data.byteOffset, e.data.byteLength).getUint32(0)
      const req = this.requests.get(id)
      if (req !== undefined) req.committed = true
    }
  }

  private installSnapshot(node: SimNode, index: number, hash: Uint8Array, data: Uint8Array): void {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
    if (
      data.length < 40 ||
      view.getUint32(0) * 0x1_0000_0000 + view.getUint32(4) !== index ||
      !equalBytes(data.subarray(8, 40), hash)
    ) {
      throw new Violation(`${node.id} received a snapshot whose data does not describe index ${index}`)
    }
    if (index >= this.log.hashes.length) {
      throw new Violation(
        `${node.id} installs a snapshot at ${index}, beyond everything committed (${this.log.lastIndex})`
      )
    }
    if (!equalBytes(this.log.hashes[index]!, hash)) {
      throw new Violation(
        `state machine safety: ${node.id} installs a snapshot at ${index} that differs from the committed entry`
      )
    }
    node.appliedIndex = index
    this.stats.snapshotsInstalled++
    this.record(node.id, `installs snapshot at ${index}`)
  }

  private maybeCompact(node: SimNode): void {
    const p = this.params
    if (p.compactEvery === 0 || !node.alive) return
    const raft = node.raft!
    const snapIndex = raft.snapshotMeta().index
    if (node.appliedIndex - snapIndex < p.compactEvery + p.compactTrailing) return
    const index = node.appliedIndex - p.compactTrailing
    const hash = raft.hashAt(index)!
    const data = new Uint8Array(40)
    const view = new DataView(data.buffer)
    view.setUint32(0, Math.floor(index / 0x1_0000_0000))
    view.setUint32(4, index >>> 0)
    data.set(hash, 8)
    const meta = raft.compact(index, data)
    if (meta !== null) {
      // The snapshot is written after every batch written before it (the store orders its writes),
      // so if it survives a crash, so do they: the commit index a lazy batch recorded among them.
      node.disk.sync()
      node.disk.compact(meta, data)
      this.stats.compactions++
    }
  }

  // ===========================================================================================
  // Invariants

  /** Checks a batch that just became durable: the stored log stays a valid, matching chain. */
  private checkDurable(node: SimNode, b: Batch, d: DurableState): void {
    const snapIndex = d.snapshot.meta.index
    if (b.entries.length > 0) {
      const first = b.entries[0]!.index
      let prevHash = first - 1 === snapIndex ? d.snapshot.meta.hash : d.entries[first - 1 - snapIndex - 1]!.hash
      let prevTerm = first - 1 === snapIndex ? d.snapshot.meta.term : d.entries[first - 1 - snapIndex - 1]!.term
      for (const e of b.entries) {
        if (e.term < prevTerm)
          throw new Violation(`${node.id} stored entry ${e.index} of term ${e.term} after term ${prevTerm}`)
        const checked = this.chainChecked.get(e)
        if (checked === undefined || !equalBytes(checked, prevHash)) {
          if (!equalBytes(computeEntryHash(prevHash, e.index, e.term, e.type, e.data), e.hash)) {
            throw new Violation(
              `log matching: ${node.id} stored entry ${e.index} (term ${e.term}) that does not chain onto its predecessor`
            )
          }
          this.chainChecked.set(e, prevHash)
        }
        // Log matching: one (index, term) names one entry, and (by the chain) one prefix.
        let seen = this.seenEntries.get(e.index)
        if (seen === undefined) {
          seen = []
          this.seenEntries.set(e.index, seen)
        }
        const same = seen.find((s) => s.term === e.term)
        if (same === undefined) seen.push(e)
        else if (same !== e && !equalBytes(same.hash, e.hash)) {
          throw new Violation(
            `log matching: two different entries at index ${e.index} in term ${e.term} (one on ${node.id})`
          )
        }
        prevHash = e.hash
        prevTerm = e.term
      }
    }
    const last = snapIndex + d.entries.length
    this.log.committedUpTo(d.hardState.commit, d.hardState.term)
    if (d.hardState.commit > last) {
      throw new Violation(`${node.id} persisted commit ${d.hardState.commit} beyond its stored log (last ${last})`)
    }
    if (d.entries.length > 0 && d.entries[d.entries.length - 1]!.term > d.hardState.term) {
      throw new Violation(`${node.id} stored an entry of a term above its persisted term`)
    }
  }

  private checkStep(): void {
    for (const node of this.nodes.values()) {
      if (!node.alive) continue
      const raft = node.raft!
      const role = raft.currentRole
      const term = raft.currentTerm
      if (role === 'leader') {
        this.log.committedUpTo(raft.commitIndex, term)
        if (node.lastRole !== 'leader' || node.lastTerm !== term) this.onBecameLeader(node)
      }
      node.lastRole = role
      node.lastTerm = term
      if (term > this.stats.maxTerm) this.stats.maxTerm = term
    }
    this.checkCommittedDurable()
  }

  private onBecameLeader(node: SimNode): void {
    const raft = node.raft!
    const term = raft.currentTerm
    this.stats.elections++
    this.record(node.id, `LEADER of term ${term} (last ${raft.lastIndex}, commit ${raft.commitIndex})`)
    this.log.checkNewLeader(node.id, term, raft)
  }

  /** The latest committed entry is durable on enough voters that every quorum holds it. */
  private checkCommittedDurable(): void {
    const c = this.log.lastIndex
    if (c === 0) return
    const config = this.log.config
    const n = config.voters.length
    const need = n - quorumSize(n) + 1
    let holders = 0
    const want = this.log.hashes[c]!
    for (const v of config.voters) {
      const disk = this.nodes.get(v)!.disk
      if (disk.durable.snapshot.meta.index >= c) holders++
      else {
        const h = disk.hashAt(c)
        if (h !== null && equalBytes(h, want)) holders++
      }
    }
    if (holders < need) {
      throw new Violation(
        `durability: committed entry ${c} is durable on only ${holders} of voters [${config.voters.join(',')}] (need ${need}): it could be lost`
      )
    }
  }

  // ===========================================================================================
  // Trace

  private push(rec: TraceRecord): void {
    if (this.trace.length < this.traceLength) this.trace.push(rec)
    else {
      this.trace[this.traceAt] = rec
      this.traceAt = (this.traceAt + 1) % this.traceLength
    }
  }

  private record(node: string, text: string): void {
    this.push({ t: this.now, text, msg: null, node })
  }

  private recordMsg(node: string, msg: Message): void {
    this.push({ t: this.now, text: null, msg, node })
  }

  private formatTrace(): string[] {
    const ordered = [...this.trace.slice(this.traceAt), ...this.trace.slice(0, this.traceAt)]
    return ordered.map((r) => {
      const t = `t=${(r.t / TICK_UNITS).toFixed(1).padStart(7)}`
      return `${t} ${r.node.padEnd(4)} ${r.msg !== null ? `<- ${formatMessage(r.msg)}` : r.text}`
    })
  }
}

export function formatMessage(m: Message): string {
  const head = `${m.from} ${m.type} t${m.term}`
  switch (m.type) {
    case 'app': {
      const n = m.entries.length
      const range =
        n === 0
          ? 'no entries'
          : `entries ${m.entries[0]!.index}..${m.entries[n - 1]!.index} (terms ${m.entries[0]!.term}..${m.entries[n - 1]!.term})`
      return `${head} prev ${m.prevIndex}/t${m.prevTerm} ${range} commit ${m.commit}`
    }
    case 'appResp':
      return m.reject ? `${head} REJECT ${m.index} hint ${m.hintIndex}/t${m.hintTerm}` : `${head} ok ${m.index}`
    case 'vote':
    case 'preVote':
      return `${head} last ${m.lastIndex}/t${m.lastTerm}${m.force ? ' force' : ''}`
    case 'voteResp':
    case 'preVoteResp':
      return `${head} ${m.reject ? 'REJECT' : 'grant'}`
    case 'heartbeat':
      return `${head} commit ${m.commit}${m.context !== null ? ' +read' : ''}`
    case 'heartbeatResp':
      return `${head}${m.context !== null ? ' +read' : ''}`
    case 'snap':
      return `${head} snapshot ${m.snapshot.meta.index}/t${m.snapshot.meta.term}`
    case 'readIndexResp':
      return `${head} index ${m.index}`
    case 'transferLeader':
      return `${head} target ${m.target}`
    default:
      return head
  }
}
