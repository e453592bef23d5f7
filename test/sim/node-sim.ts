// Deterministic simulation of whole nodes: the production driver (daemon/replica/board.ts) and store
// (storage/raft-store.ts) over a simulated LevelDB (sim-level.ts), every message through the wire
// codec the transport frames (board/wire.ts), over a simulated network with one ordered message
// stream and one snapshot stream per link (reordered against each other), the transport's queue
// limit and one snapshot transfer per link at a time. Time, timers, the event loop and randomness
// are the simulator's (BoardClock): every asynchronous step of the driver and the store runs from
// the simulator's event queue, so a seed replays exactly.
//
// Faults: message loss (stream resets), delays, stalled snapshots, partitions; crashes that keep any
// subset of the writes after the last completed sync; fsync errors; flipped bytes in the hard state
// and the log; wiped disks; process pauses that bunch the ticks after them; clock drift; membership
// down to one voter and back; unreachable members; Byzantine members (byzantine.ts).
//
// Checked after every step: one leader per term, one vote per member and term, every applied entry
// is the committed one (and the applied state a node restarts with is the committed prefix),
// leader completeness, no honest node stops itself or raises an alarm (in a Byzantine run: alarms
// name a liar only, and what honest nodes apply is stored by a majority of the honest voters).
// A quiet phase at the end: a leader, every request committed, every member applied everything.

import { pino } from 'pino'
import { equalBytes, toHex } from '../../protocol/bytes.js'
import { Reader } from '../../protocol/codec.js'
import {
  applyConfEntry,
  decodeConfEntry,
  InconsistentStoreError,
  type Alarm,
  type ConfChange,
  type Configuration,
  type Entry,
  type Message,
  type NodeId,
  type Raft
} from '../../board/raft/index.js'
import { decodeMessage, encodeMessage } from '../../board/wire.js'
import { BoardReplica, BoardError, type BoardClock, type BoardOptions } from '../../daemon/replica/board.js'
import { DEFAULT_TRANSPORT_LIMITS } from '../../daemon/replica/transport/index.js'
import { CRITICAL_TYPES, FrameQueue } from '../../daemon/replica/transport/frame-queue.js'
import { BOARD_UNBORN_KEY, PREFIX } from '../../storage/database.js'
import { entryKey, type RaftStore, StoreCorruptError, type BatchOp } from '../../storage/raft-store.js'
import { Byzantine, BYZANTINE_KINDS, type ByzantineKind } from './byzantine.js'
import { CommittedLog, Violation } from './committed.js'
import { simVotes } from './sim.js'
import { EventHeap } from './heap.js'
import { plantInBoard, storeFactory, type NodeBug } from './node-bugs.js'
import { Prng } from './prng.js'
import { SimDiskStore, type PendingWrite, type SimLevel } from './sim-level.js'
import type { SimResult } from './sim.js'

/** Simulated milliseconds per tick of every board (a node's clock may drift from it). */
const TICK_MS = 10
/** Messages a peer's queue holds in the simulated transport, at most (scaled down from 4096). */
const LIMITS = DEFAULT_TRANSPORT_LIMITS
/** The sim's own record of the applied state: one key per applied entry, as the pool board's records. */
const STATE_PREFIX = 0x7e
const PROPOSAL_TIMEOUT_MS = 2_000

export interface NodeSimOptions {
  readonly seed: number
  readonly nodes: number
  readonly steps: number
  readonly bug?: NodeBug | null
  /** Byzantine members (0: honest run) and the kinds of lie they tell. */
  readonly byzantine?: number
  readonly lies?: readonly ByzantineKind[]
  /**
   * The properties checked in a run with f liars (default all; honest runs check all), the boards
   * running with faultyVoters f and at least 3f + 1 voters (docs/raft.md, "Lying voters"):
   * 'safety': an entry an honest node applies is, when first applied anywhere, durably stored by a
   * majority of the honest voters of the configuration; honest nodes apply the same entry at each
   * index, in order; honest leaders hold every entry applied before their term; one vote per honest
   * member and term. 'alarms': every alarm an honest node raises names a liar. 'liveness': after
   * the faults stop, a leader (a liar too) commits every request and every honest member applies it.
   */
  readonly properties?: readonly ByzantineProperty[]
  readonly traceEvents?: number
  readonly alwaysTrace?: boolean
}

export const BYZANTINE_PROPERTIES = ['alarms', 'safety', 'liveness'] as const
export type ByzantineProperty = (typeof BYZANTINE_PROPERTIES)[number]

interface Params {
  electionTicks: number
  heartbeatTicks: number
  snapshotEveryEntries: number
  dropRate: number
  maxDelayMs: number
  snapDelayMs: number
  snapStallRate: number
  queueLimit: number
  diskMaxMs: number
  slowDiskRate: number
  fsyncErrorRate: number
  faultIntervalMs: number
  clientIntervalMs: number
  readIntervalMs: number
  memberIntervalMs: number
  transferIntervalMs: number
  driftMax: number
  minVoters: number
  corruptRate: number
  wipeRate: number
  keepUnsyncedRate: number
  /** Failpoint: a member is killed right after it sends a vote, and back at once. */
  crashAfterVoteRate: number
  /** Milliseconds a link's writer takes per frame, at most (a slow link fills its queue). */
  writeGapMs: number
  /**
   * Right behind a snapshot, the link's previous snapshot comes again (a transfer the sender gave up
   * on and that still arrives, a replay): older than what was just verified, and it may come before
   * that one's Ready is taken (board.ts keeps every verified history until its Ready).
   */
  snapReplayRate: number
}

function drawParams(rng: Prng, nodes: number): Params {
  const electionTicks = rng.range(5, 12)
  return {
    electionTicks,
    heartbeatTicks: rng.range(1, Math.min(3, Math.floor(electionTicks / 2))),
    snapshotEveryEntries: rng.pick([3, 8, 30, 1000]),
    dropRate: rng.pick([0, 0.01, 0.05]),
    maxDelayMs: rng.pick([2, 8, 20]),
    snapDelayMs: rng.pick([5, 30, 120]),
    snapStallRate: rng.pick([0, 0.1, 0.3]),
    queueLimit: rng.pick([4, 16, LIMITS.maxQueueMessagesPerPeer]),
    diskMaxMs: rng.pick([1, 3, 8]),
    slowDiskRate: rng.pick([0, 0.1, 0.3]),
    fsyncErrorRate: rng.pick([0, 0, 0.002]),
    faultIntervalMs: rng.pick([60, 150, 400]),
    clientIntervalMs: rng.pick([3, 10, 30]),
    readIntervalMs: rng.pick([20, 60]),
    memberIntervalMs: rng.pick([150, 400, 1000]),
    transferIntervalMs: rng.pick([300, 1000, 3000]),
    driftMax: rng.pick([0, 0.05, 0.25]),
    minVoters: nodes >= 3 && rng.chance(0.3) ? 1 : Math.min(3, nodes),
    corruptRate: rng.pick([0, 0.05, 0.2]),
    wipeRate: rng.pick([0, 0.1, 0.3]),
    keepUnsyncedRate: rng.pick([0, 0.5, 1]),
    crashAfterVoteRate: rng.pick([0, 0.05, 0.2]),
    writeGapMs: rng.pick([0, 1, 4]),
    snapReplayRate: rng.pick([0, 0.2, 0.6])
  }
}

type Ev = { time: number; seq: number } & (
  | { kind: 'deliver'; bytes: Uint8Array; from: NodeId; to: NodeId; stream: 'msg' | 'snap'; held?: boolean }
  | { kind: 'write'; from: NodeId; to: NodeId }
  | { kind: 'tick'; node: SimNode; life: number }
  | { kind: 'timer'; node: SimNode; life: number; id: number }
  | { kind: 'turn'; node: SimNode; life: number; resolve: () => void }
  | { kind: 'disk'; node: SimNode; life: number; db: SimLevel; write: PendingWrite }
  | { kind: 'restart'; node: SimNode; life: number }
  | { kind: 'unpause'; node: SimNode; life: number }
  | { kind: 'heal'; cuts: readonly string[] }
  | { kind: 'client' }
  | { kind: 'read' }
  | { kind: 'member' }
  | { kind: 'transfer' }
  | { kind: 'fault' }
  | { kind: 'lie'; node: SimNode }
)
type EvInput = Ev extends infer E ? (E extends Ev ? Omit<E, 'time' | 'seq'> : never) : never

interface Link {
  readonly queue: FrameQueue
  writing: boolean
  lastArrival: number
  snapBusy: boolean
  /** The last snapshot delivered on this link (replayed behind the next one: snapReplayRate). */
  lastSnap: Uint8Array | null
}

class SimNode {
  board: BoardReplica | null = null
  raft: Raft | null = null
  db: SimLevel | null = null
  alive = false
  opening = false
  paused = false
  /** Events that came while the process was paused: they run, bunched, when it resumes. */
  deferred: Ev[] = []
  /** Refused to start (wiped or damaged store): out for good, until removed from the board. */
  refused = false
  decommissioned = false
  /** Never started: a member added by an operator who never brought its node up. */
  ghost = false
  byzantine = false
  expectFatal = false
  /** Its disk was wiped or damaged: refusing to start is the right answer. */
  expectRefusal = false
  appliedIndex = 0
  slowDiskUntil = 0
  /** This node's tick interval relative to real time (clock drift). */
  rate = 1
  lastRole = 'follower'
  lastTerm = 0
  readonly timers = new Map<number, () => void>()
  /** What the board registered with its transport for inbound messages. */
  receive: (m: Message) => void = () => {}
  tickFns: Array<() => void> = []
  readonly rng: Prng
  constructor(
    readonly id: NodeId,
    readonly disk: SimDiskStore,
    rng: Prng
  ) {
    this.rng = rng
  }
  get life(): number {
    return this.disk.life
  }
}

interface Request {
  id: number
  data: Uint8Array
  committed: boolean
  lastAttempt: number
}

const SILENT = pino({ level: 'silent' })

export async function runNodeSimulation(opts: NodeSimOptions): Promise<SimResult> {
  // Refused proposals and reads throw errors by the thousand; their stack traces cost more than
  // the rest of a step. A replay (alwaysTrace) keeps them.
  const limit = Error.stackTraceLimit
  if (opts.alwaysTrace !== true) Error.stackTraceLimit = 0
  try {
    return await new NodeSimulation(opts).run()
  } finally {
    Error.stackTraceLimit = limit
  }
}

export function describeLies(lies: readonly ByzantineKind[]): string {
  return lies.join(',')
}

class NodeSimulation {
  private readonly rng: Prng
  private readonly p: Params
  private readonly heap = new EventHeap<Ev>()
  private seq = 0
  private now = 0
  private steps = 0
  private phase: 'chaos' | 'quiet' = 'chaos'
  private quietDeadline = 0
  private readonly nodes = new Map<NodeId, SimNode>()
  private nextNodeNumber = 1
  private readonly cuts = new Map<string, number>()
  /**
   * Per directed link: the transport's queue of frames (daemon/replica/transport/frame-queue.ts, with
   * its eviction rule), whether its writer is busy, when the last frame arrives, a snapshot in flight.
   */
  private readonly links = new Map<NodeId, Map<NodeId, Link>>()
  private readonly bug: NodeBug | null
  private readonly byzantine: Byzantine | null
  private nextTimerId = 1
  private readonly props: ReadonlySet<ByzantineProperty>
  private refusals = 0

  private readonly votes = new Map<string, NodeId>()
  private readonly log = new CommittedLog()
  private readonly requests = new Map<number, Request>()
  private readonly pending: number[] = []
  private nextRequestId = 1
  private quietNewRequests = 0
  private nextReadId = 1

  private readonly trace: string[] = []
  private readonly traceLength: number
  readonly stats = {
    elections: 0,
    maxTerm: 0,
    committed: 0,
    crashes: 0,
    keptUnsynced: 0,
    lostUnsynced: 0,
    fsyncErrors: 0,
    corruptions: 0,
    wipes: 0,
    refusals: 0,
    partitions: 0,
    pauses: 0,
    confChanges: 0,
    confRefused: 0,
    transfers: 0,
    snapshotsSent: 0,
    readsServed: 0,
    requests: 0,
    messagesDelivered: 0,
    queueDrops: 0,
    snapBusyDrops: 0,
    snapshotsReplayed: 0,
    lies: 0,
    alarms: 0
  }

  constructor(private readonly opts: NodeSimOptions) {
    this.rng = new Prng(opts.seed)
    this.p = drawParams(this.rng.fork(), opts.nodes)
    this.bug = opts.bug ?? null
    this.props = new Set((opts.byzantine ?? 0) > 0 ? (opts.properties ?? BYZANTINE_PROPERTIES) : BYZANTINE_PROPERTIES)
    this.traceLength = opts.traceEvents ?? Number(process.env.SIM_TRACE_EVENTS ?? 60)
    const ids: NodeId[] = []
    for (let i = 0; i < opts.nodes; i++) ids.push(this.newNodeId())
    const initial: Configuration = { voters: ids, learners: [] }
    this.initial = initial
    const liars = Math.min(opts.byzantine ?? 0, Math.floor((opts.nodes - 1) / 2))
    this.liars = liars
    for (const id of ids) this.addNode(id)
    for (let i = 0; i < liars; i++) this.nodes.get(ids[ids.length - 1 - i]!)!.byzantine = true
    this.byzantine =
      liars > 0
        ? new Byzantine(
            this.rng.fork(),
            opts.lies ?? BYZANTINE_KINDS,
            (from, m) => this.sendRaw(from, m),
            () => this.memberIds(),
            (from, to, bytes) => this.sendBytes(from, to, 'msg', bytes, 'app')
          )
        : null
  }

  private readonly initial: Configuration
  /** Members that lie: the boards run with faultyVoters set to it. */
  private readonly liars: number

  async run(): Promise<SimResult> {
    let failure: string | null = null
    const stepLimit = Math.max(60 * this.opts.steps, 100_000)
    try {
      for (const node of this.nodes.values()) this.start(node)
      this.schedule(this.p.clientIntervalMs, { kind: 'client' })
      this.schedule(this.p.readIntervalMs, { kind: 'read' })
      this.schedule(this.p.faultIntervalMs, { kind: 'fault' })
      this.schedule(this.p.memberIntervalMs, { kind: 'member' })
      this.schedule(this.p.transferIntervalMs, { kind: 'transfer' })
      for (const n of this.nodes.values()) if (n.byzantine) this.schedule(TICK_MS, { kind: 'lie', node: n })
      await drain()
      for (;;) {
        const ev = this.heap.pop()
        if (ev === undefined) throw new Violation('event queue ran dry')
        this.now = ev.time
        this.steps++
        // An event that ran no node code (a frame taken off a queue, a frame for a dead node, a
        // tick of a stalled process) changed nothing the checks look at and set off no promise:
        // nothing to drain or check. Promises left over from earlier events run at the next drain.
        if (this.process(ev)) {
          await drain()
          this.checkStep()
        } else if (this.pendingFailure !== null) throw this.pendingFailure
        if (this.phase === 'chaos' && this.steps >= this.opts.steps) this.startQuiet()
        if (this.steps > stepLimit) {
          if (!this.props.has('liveness')) break
          throw new Violation(`liveness: more than ${stepLimit} steps: a message storm?`)
        }
        if (this.phase === 'quiet' && this.steps % 16 === 0) {
          const missing = this.convergenceProblem()
          if (missing === null) break
          if (this.now >= this.quietDeadline && !this.props.has('liveness')) break
          if (this.now >= this.quietDeadline)
            throw new Violation(
              `liveness: not converged ${this.quietMs() / TICK_MS} ticks after faults stopped: ${missing}`
            )
        }
      }
    } catch (err) {
      failure = err instanceof Violation ? err.message : `exception: ${(err as Error).stack ?? String(err)}`
    }
    return {
      seed: this.opts.seed,
      ok: failure === null,
      steps: this.steps,
      ticks: Math.floor(this.now / TICK_MS),
      failure,
      trace: failure === null && this.opts.alwaysTrace !== true ? [] : [...this.trace],
      stats: this.stats as unknown as SimResult['stats'],
      params:
        JSON.stringify(this.p) +
        (this.byzantine !== null
          ? ` byzantine=${this.opts.byzantine} lies=${describeLies(this.opts.lies ?? BYZANTINE_KINDS)}`
          : '')
    }
  }

  // ===========================================================================================
  // Nodes

  private newNodeId(): NodeId {
    return `n${this.nextNodeNumber++}`
  }

  private memberIds(): NodeId[] {
    return [...this.nodes.keys()]
  }

  private addNode(id: NodeId): SimNode {
    const disk = new SimDiskStore()
    // What poolboard init leaves: a database whose board is unborn.
    disk.durable.set(String.fromCharCode(...BOARD_UNBORN_KEY), new Uint8Array(0))
    const node = new SimNode(id, disk, this.rng.fork())
    node.rate = 1 + (this.rng.float() * 2 - 1) * this.p.driftMax
    this.nodes.set(id, node)
    return node
  }

  private clockOf(node: SimNode, life: number): BoardClock {
    const rng = node.rng
    return {
      setInterval: (fn) => {
        node.tickFns.push(fn)
        if (node.tickFns.length === 1) this.schedule(1 + rng.int(TICK_MS), { kind: 'tick', node, life })
        return fn
      },
      clearInterval: (h) => {
        node.tickFns = node.tickFns.filter((f) => f !== h)
      },
      setTimeout: (fn, ms) => {
        const id = this.nextTimerId++
        node.timers.set(id, fn)
        this.schedule(ms, { kind: 'timer', node, life, id })
        return id
      },
      clearTimeout: (h) => {
        node.timers.delete(h as number)
      },
      nextTurn: async () => {
        await new Promise<void>((resolve) => {
          this.schedule(0, { kind: 'turn', node, life, resolve })
        })
      },
      nowMs: () => this.now,
      isoTime: () => `t=${this.now}`,
      randomInt: (n) => rng.int(n),
      randomBytes: (n) => {
        const out = new Uint8Array(n)
        for (let i = 0; i < n; i++) out[i] = rng.int(256)
        return out
      }
    }
  }

  private start(node: SimNode): void {
    if (node.alive || node.opening || node.refused || node.decommissioned || node.ghost) return
    node.opening = true
    node.paused = false
    node.deferred = []
    node.timers.clear()
    node.tickFns = []
    const db = node.disk.open((w, d) => {
      this.schedule(this.diskLatency(node), { kind: 'disk', node, life: node.life, db: d, write: w })
    })
    node.db = db
    const life = node.life
    const options: BoardOptions = {
      selfId: node.id,
      store: undefined as unknown as RaftStore,
      transport: {
        send: (m) => {
          if (node.life === life && node.alive) this.send(node, m)
        },
        onMessage: (handler) => {
          node.receive = handler
        }
      },
      applier: { apply: async (entries) => this.apply(node, life, entries) },
      logger: SILENT,
      timing: { tickMs: TICK_MS, heartbeatTicks: this.p.heartbeatTicks, electionTicks: this.p.electionTicks },
      snapshotEveryEntries: this.p.snapshotEveryEntries,
      initialConfiguration: this.initial,
      onFatal: (err) => {
        if (node.life !== life) return
        if (node.expectFatal) {
          this.record(node.id, `stops itself after the injected fsync error: ${err.message}`)
          this.crash(node, 'fsync error')
          return
        }
        if (!node.byzantine) this.fail(new Violation(`${node.id} stopped itself in an honest run: ${err.message}`))
      },
      onAlarm: (alarm) => {
        if (node.life === life) this.onAlarm(node, alarm)
      },
      clock: this.clockOf(node, life),
      // With liars, votes are signed (docs/raft.md): a liar cannot lead a term by saying so.
      votes: this.byzantine !== null ? simVotes(node.id) : null,
      // ... and quorums, acknowledgements and commits are those of a board with that many liars.
      faultyVoters: this.liars
    }
    void (async () => {
      try {
        const store = await storeFactory(this.bug)(db.asDatabase())
        const board = await BoardReplica.open({ ...options, store })
        if (node.life !== life) return
        plantInBoard(this.bug, board)
        node.board = board
        node.raft = (board as unknown as { raft: Raft }).raft
        node.alive = true
        node.opening = false
        node.lastRole = 'follower'
        node.lastTerm = node.raft.currentTerm
        await this.checkRestoredState(node, db)
        board.start()
        this.record(
          node.id,
          `START term=${board.term} commit=${board.commit} applied=${board.appliedIndex} last=${node.raft.lastIndex}`
        )
      } catch (err) {
        if (node.life !== life) return
        if (node.expectFatal) {
          this.record(node.id, `cannot start after the injected fsync error: ${(err as Error).message}`)
          this.crash(node, 'fsync error while opening')
          return
        }
        node.opening = false
        if (err instanceof Violation) {
          this.fail(err)
          return
        }
        if (err instanceof StoreCorruptError || err instanceof InconsistentStoreError) {
          node.refused = true
          this.stats.refusals++
          this.record(node.id, `REFUSES TO START: ${(err as Error).message}`)
          if (!node.expectRefusal)
            this.fail(new Violation(`${node.id} refused to start without a disk fault: ${(err as Error).message}`))
          return
        }
        this.fail(err as Error)
      }
    })()
  }

  /** The applied index and applied state a node restarts with are the committed prefix. */
  private async checkRestoredState(node: SimNode, db: SimLevel): Promise<void> {
    const applied = node.board!.appliedIndex
    node.appliedIndex = applied
    if (node.byzantine || !this.props.has('safety')) return
    let count = 0
    for await (const [key, value] of db.iterator({
      gte: Uint8Array.of(STATE_PREFIX),
      lte: Uint8Array.of(STATE_PREFIX, 0xff, 0xff, 0xff, 0xff)
    })) {
      const index = new DataView(key.buffer, key.byteOffset).getUint32(1)
      count++
      if (index > applied)
        throw new Violation(`${node.id} restarted with applied ${applied} but holds the applied state of ${index}`)
      if (index >= this.log.hashes.length || !equalBytes(this.log.hashes[index]!, value)) {
        throw new Violation(`${node.id} restarted with applied state at ${index} that is not the committed entry`)
      }
    }
    if (count !== applied)
      throw new Violation(
        `${node.id} restarted with applied ${applied} but the applied state of only ${count} entries (a write lost in the middle)`
      )
  }

  private pendingFailure: Error | null = null

  private fail(err: Error): void {
    this.pendingFailure ??= err
  }

  private crash(node: SimNode, why: string, restartAfterMs?: number): void {
    if (!node.alive && !node.opening) return
    const wasOpening = node.opening
    node.alive = false
    node.opening = false
    node.board = null
    node.raft = null
    node.timers.clear()
    node.tickFns = []
    node.deferred = []
    const keepRate = this.p.keepUnsyncedRate
    const { candidates, kept } = node.disk.crash((n) => Array.from({ length: n }, () => this.rng.chance(keepRate)))
    this.stats.crashes++
    this.stats.keptUnsynced += kept
    this.stats.lostUnsynced += candidates - kept
    node.expectFatal = false
    let damage = ''
    // A member lost for good is survivable only while the board keeps a quorum without it.
    // Every configuration in effect anywhere (changes take effect when appended) must keep three voters.
    const configs = [this.log.config]
    for (const n of this.nodes.values()) if (n.raft !== null) configs.push(n.raft.configuration())
    const canLose =
      this.phase === 'chaos' &&
      !node.byzantine &&
      this.refusals === 0 &&
      configs.every((c) => c.voters.length >= 3 && !c.voters.some((v) => this.nodes.get(v)?.byzantine))
    if (canLose && this.rng.chance(this.p.wipeRate / 5)) {
      node.disk.wipe()
      damage = ', disk wiped'
      this.stats.wipes++
      node.expectRefusal = true
      this.refusals++
    } else if (canLose && this.rng.chance(this.p.corruptRate / 10)) {
      damage = this.corrupt(node)
    }
    this.record(
      node.id,
      `CRASH (${why}${wasOpening ? ', while opening' : ''}): kept ${kept} of ${candidates} unsynced writes${damage}`
    )
    if (this.phase === 'chaos' || why.startsWith('fsync error')) {
      this.schedule(restartAfterMs ?? this.rng.range(3, 40) * TICK_MS, { kind: 'restart', node, life: node.life })
    }
  }

  /** Flips a byte of the hard state or of an entry after the snapshot: the node must refuse to start. */
  private corrupt(node: SimNode): string {
    const d = node.disk
    const snapBytes = d.durableGet(Uint8Array.of(PREFIX.raftSnapshot))
    if (snapBytes === undefined) return ''
    const snapIndex = readVarint(snapBytes, 1)
    const entryKeys = d
      .durableKeys(PREFIX.raftEntry)
      .filter((k) => Number(new DataView(k.buffer).getBigUint64(1)) > snapIndex)
    const hard = this.rng.chance(0.5) || entryKeys.length === 0
    const key = hard ? Uint8Array.of(PREFIX.raftHardState) : this.rng.pick(entryKeys)
    if (!d.corrupt(key, this.rng.int(64), 1 << this.rng.int(8))) return ''
    node.expectRefusal = true
    this.refusals++
    this.stats.corruptions++
    return `, flipped a bit in ${hard ? 'the hard state' : `entry ${Number(new DataView(key.buffer).getBigUint64(1))}`}`
  }

  private restart(node: SimNode): void {
    if (node.alive || node.opening) return
    this.start(node)
  }

  // ===========================================================================================
  // Events

  private schedule(delayMs: number, ev: EvInput): void {
    const e = ev as Ev
    e.time = this.now + Math.max(0, Math.round(delayMs))
    e.seq = this.seq++
    this.heap.push(e)
  }

  private nodeEvent(ev: Ev & { node: SimNode; life: number }): boolean {
    const node = ev.node
    if (ev.life !== node.life) return false
    if (node.paused) {
      node.deferred.push(ev)
      if (ev.kind === 'tick') this.schedule(TICK_MS * node.rate, { kind: 'tick', node, life: ev.life })
      return false
    }
    return true
  }

  /** Runs one event; returns whether it may have run node code (and set off its promises). */
  private process(ev: Ev): boolean {
    switch (ev.kind) {
      case 'deliver':
        return this.deliver(ev)
      case 'write':
        this.write(ev.from, ev.to)
        return false
      case 'tick':
        if (!this.nodeEvent(ev)) return false
        this.schedule(TICK_MS * ev.node.rate, { kind: 'tick', node: ev.node, life: ev.life })
        for (const fn of ev.node.tickFns) fn()
        break
      case 'timer': {
        if (!this.nodeEvent(ev)) return false
        const fn = ev.node.timers.get(ev.id)
        if (fn === undefined) return false
        ev.node.timers.delete(ev.id)
        fn()
        break
      }
      case 'turn':
        if (!this.nodeEvent(ev)) return false
        ev.resolve()
        break
      case 'disk': {
        if (!this.nodeEvent(ev)) return false
        const fsyncError =
          this.phase === 'chaos' && ev.write.sync && !ev.node.byzantine && this.rng.chance(this.p.fsyncErrorRate)
        if (fsyncError) {
          ev.node.expectFatal = true
          this.stats.fsyncErrors++
          this.record(ev.node.id, 'FSYNC ERROR')
        }
        if (TRACE_MESSAGES)
          this.record(ev.node.id, `write ${ev.write.sync ? 'synced' : 'unsynced'}: ${describeOps(ev.write.ops)}`)
        ev.db.complete(fsyncError)
        break
      }
      case 'restart':
        if (ev.life !== ev.node.life) return false
        this.restart(ev.node)
        break
      case 'unpause': {
        if (ev.life !== ev.node.life) return false
        const node = ev.node
        node.paused = false
        const bunched = node.deferred
        node.deferred = []
        this.record(node.id, `RESUMES (${bunched.filter((e) => e.kind === 'tick').length} ticks bunched)`)
        for (const e of bunched) {
          // The ticks that came due during the stall fire back to back; the interval goes on as before.
          if (e.kind === 'tick') {
            if (node.life === e.life && !node.paused) for (const fn of node.tickFns) fn()
          } else {
            this.process(e)
          }
        }
        break
      }
      case 'heal':
        for (const c of ev.cuts) this.uncut(c)
        return false
      case 'client':
        this.clientStep()
        this.schedule(1 + this.rng.int(this.p.clientIntervalMs * 2), { kind: 'client' })
        break
      case 'read':
        this.readStep()
        this.schedule(1 + this.rng.int(this.p.readIntervalMs * 2), { kind: 'read' })
        break
      case 'member':
        this.memberStep()
        this.schedule(1 + this.rng.int(this.p.memberIntervalMs * 2), { kind: 'member' })
        break
      case 'transfer':
        if (this.phase !== 'chaos') return false
        this.transferStep()
        this.schedule(1 + this.rng.int(this.p.transferIntervalMs * 2), { kind: 'transfer' })
        break
      case 'fault':
        if (this.phase !== 'chaos') return false
        this.faultStep()
        this.schedule(1 + this.rng.int(this.p.faultIntervalMs * 2), { kind: 'fault' })
        break
      case 'lie':
        if (ev.node.alive) {
          this.stats.lies += this.byzantine!.lie(ev.node.id, ev.node.raft!)
        }
        this.schedule(1 + this.rng.int(TICK_MS * 3), { kind: 'lie', node: ev.node })
        break
    }
    return true
  }

  private diskLatency(node: SimNode): number {
    if (node.slowDiskUntil > this.now) return this.rng.range(TICK_MS, 8 * TICK_MS)
    return this.rng.range(0, this.p.diskMaxMs)
  }

  // ===========================================================================================
  // Network

  private link(from: NodeId, to: NodeId): Link {
    let out = this.links.get(from)
    if (out === undefined) {
      out = new Map()
      this.links.set(from, out)
    }
    let l = out.get(to)
    if (l === undefined) {
      l = { queue: new FrameQueue(), writing: false, lastArrival: 0, snapBusy: false, lastSnap: null }
      out.set(to, l)
    }
    return l
  }

  private isCut(from: NodeId, to: NodeId): boolean {
    return this.cuts.size > 0 && this.cuts.has(`${from}>${to}`)
  }

  private send(node: SimNode, m: Message): void {
    if (!node.byzantine && this.props.has('safety')) this.checkDurableBeforeSend(node, m)
    if (m.type === 'voteResp' && !m.reject && !node.byzantine) {
      this.checkVote(node.id, m.term, m.to)
      if (this.phase === 'chaos' && this.rng.chance(this.p.crashAfterVoteRate)) {
        this.sendRaw(node.id, m)
        this.crash(node, 'right after voting', this.rng.range(1, 10))
        return
      }
    }
    if (node.byzantine && this.byzantine!.tamper(node.id, m)) return
    this.sendRaw(node.id, m)
  }

  /** Puts a message on the wire, as the transport frames it. */
  private sendRaw(from: NodeId, m: Message): void {
    let bytes: Uint8Array
    try {
      bytes = encodeMessage(m, LIMITS)
    } catch {
      return // the transport refuses to send what it cannot frame
    }
    this.sendBytes(from, m.to, m.type === 'snap' ? 'snap' : 'msg', bytes, m.type)
  }

  sendBytes(from: NodeId, to: NodeId, stream: 'msg' | 'snap', bytes: Uint8Array, type: Message['type']): void {
    if (this.isCut(from, to)) return
    const link = this.link(from, to)
    const chaos = this.phase === 'chaos'
    if (stream === 'snap') {
      // One transfer per link at a time; a stalled one holds the stream for long.
      if (link.snapBusy) {
        this.stats.snapBusyDrops++
        return
      }
      link.snapBusy = true
      this.stats.snapshotsSent++
      const stall = chaos && this.rng.chance(this.p.snapStallRate) ? this.rng.range(5, 40) * TICK_MS : 0
      this.schedule(this.rng.range(1, this.p.snapDelayMs) + stall + Math.floor(bytes.length / 4096), {
        kind: 'deliver',
        bytes,
        from,
        to,
        stream
      })
      return
    }
    // The transport's rule for a full queue: evict the oldest frame that is not critical, else drop the new one.
    const q = link.queue
    const frame = { bytes, type, critical: CRITICAL_TYPES.has(type) }
    while (q.length >= this.p.queueLimit || q.bytes + bytes.length > LIMITS.maxQueueBytesPerPeer) {
      if (q.removeOldest((f) => !f.critical) === undefined) break
      this.stats.queueDrops++
    }
    if (q.length >= this.p.queueLimit || q.bytes + bytes.length > LIMITS.maxQueueBytesPerPeer) {
      this.stats.queueDrops++
      return
    }
    q.push(frame)
    if (!link.writing) {
      link.writing = true
      this.schedule(0, { kind: 'write', from, to })
    }
  }

  /** The link's writer puts the oldest queued frame on its stream; a slow link writes slowly. */
  private write(from: NodeId, to: NodeId): void {
    const link = this.link(from, to)
    const frame = link.queue.shift()
    if (frame === undefined) {
      link.writing = false
      return
    }
    this.schedule(this.rng.range(0, this.p.writeGapMs), { kind: 'write', from, to })
    if (this.isCut(from, to)) return // the connection is down: what was queued is lost
    if (this.phase === 'chaos' && this.rng.chance(this.p.dropRate)) return // a stream reset
    // One ordered stream per link: a frame never overtakes the one written before it.
    const at = Math.max(this.now + this.rng.range(1, this.phase === 'quiet' ? 3 : this.p.maxDelayMs), link.lastArrival)
    link.lastArrival = at
    this.schedule(at - this.now, { kind: 'deliver', bytes: frame.bytes, from, to, stream: 'msg' })
  }

  /** Returns whether the frame reached a node's board. */
  private deliver(ev: Ev & { kind: 'deliver' }): boolean {
    if (ev.held !== true && ev.stream === 'snap') {
      const link = this.link(ev.from, ev.to)
      link.snapBusy = false
      const previous = link.lastSnap
      link.lastSnap = ev.bytes
      if (previous !== null && this.phase === 'chaos' && this.p.snapReplayRate > 0) {
        if (this.rng.chance(this.p.snapReplayRate)) {
          this.stats.snapshotsReplayed++
          this.schedule(this.rng.range(0, 4), { ...ev, bytes: previous, held: true })
        }
      }
    }
    const node = this.nodes.get(ev.to)
    if (node === undefined || !node.alive || this.isCut(ev.from, ev.to)) return false
    if (node.paused) {
      // Held in the socket until the process resumes (off the sender's queue already).
      ev.held = true
      node.deferred.push(ev)
      return false
    }
    let m: Message
    try {
      m = decodeMessage(ev.bytes, LIMITS)
    } catch {
      return false // the transport drops a malformed frame
    }
    // The transport authenticates the sender (the stream's peer id) and the addressee.
    if (m.from !== ev.from || m.to !== ev.to) return false
    this.stats.messagesDelivered++
    if (TRACE_MESSAGES) this.record(node.id, `<- ${describe(m)}`)
    if (node.byzantine) this.byzantine!.observe(m)
    node.receive(m)
    return true
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

  private live(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.alive && !n.paused)
  }

  /** The live leader of the highest term (with `honest`, among honest nodes only). */
  private honestLeader(honest = true): SimNode | null {
    let best: SimNode | null = null
    for (const n of this.nodes.values()) {
      if (!n.alive || (honest && n.byzantine) || n.raft!.currentRole !== 'leader') continue
      if (best === null || n.raft!.currentTerm > best.raft!.currentTerm) best = n
    }
    return best
  }

  private clientStep(): void {
    const quiet = this.phase === 'quiet'
    // Once the faults stop, a client asks again for every request it lost (to a crash, a deposed
    // leader, a dropped append) after one election timeout rather than three, all at once rather
    // than one per call: the quiet phase checks that everything commits, and waiting out the
    // retries was four fifths of its steps. The fault phase is as before.
    const retryMs = (quiet ? 1 : 3) * this.p.electionTicks * TICK_MS
    while (this.pending.length > 0 && this.requests.get(this.pending[0]!)!.committed) this.pending.shift()
    const stale: Request[] = []
    for (const id of this.pending) {
      const r = this.requests.get(id)!
      if (r.committed || this.now - r.lastAttempt < retryMs) continue
      stale.push(r)
      if (!quiet) break
    }
    if (stale.length === 0) {
      if (quiet && this.quietNewRequests >= 3) return
      if (quiet) this.quietNewRequests++
      const id = this.nextRequestId++
      const data = new Uint8Array(6 + this.rng.int(40))
      data[0] = 1 // a board entry's version byte, then an opaque payload with the request id
      data[1] = 0xee
      new DataView(data.buffer).setUint32(2, id)
      const req = { id, data, committed: false, lastAttempt: this.now }
      this.requests.set(id, req)
      this.pending.push(id)
      this.stats.requests++
      stale.push(req)
    }
    for (const req of stale) req.lastAttempt = this.now
    // Clients follow whoever leads, a liar too (its board may lead as any member's does).
    const leader = this.honestLeader(false)
    const target =
      leader !== null && !this.rng.chance(0.1) ? leader : this.live().length > 0 ? this.rng.pick(this.live()) : null
    if (target === null || target.board === null) return
    for (const req of stale) {
      target.board.propose(req.data, PROPOSAL_TIMEOUT_MS).then(
        () => {},
        () => {}
      )
    }
  }

  private readStep(): void {
    const live = this.live().filter((n) => !n.byzantine)
    if (live.length === 0) return
    const node = this.rng.pick(live)
    let minIndex = 0
    for (const n of this.nodes.values()) if (n.alive && !n.byzantine) minIndex = Math.max(minIndex, n.raft!.commitIndex)
    minIndex = Math.max(minIndex, this.log.lastIndex)
    const life = node.life
    const id = this.nextReadId++
    node.board!.linearizableRead(PROPOSAL_TIMEOUT_MS).then(
      (index) => {
        if (node.life !== life) return
        this.stats.readsServed++
        if (index < minIndex)
          this.fail(
            new Violation(
              `linearizability: read #${id} on ${node.id} got index ${index}, but ${minIndex} was committed before it was requested`
            )
          )
      },
      () => {}
    )
  }

  private transferStep(): void {
    const leader = this.honestLeader()
    if (leader === null) return
    const voters = leader.raft!.configuration().voters.filter((v) => v !== leader.id)
    if (voters.length === 0) return
    try {
      leader.board!.transferLeadership(this.rng.pick(voters))
      this.stats.transfers++
    } catch {
      // not leader any more
    }
  }

  private memberStep(): void {
    this.decommissionRemoved()
    const leader = this.honestLeader()
    if (leader === null) return
    const config = leader.raft!.configuration()
    const options: ConfChange[] = []
    // The operator removes members that refused to start (their store was lost) first.
    for (const id of [...config.voters, ...config.learners]) {
      const n = this.nodes.get(id)
      if (n !== undefined && (n.refused || n.expectRefusal || n.ghost)) options.push({ kind: 'removeNode', node: id })
    }
    if (this.phase === 'chaos' && options.length === 0) {
      for (const l of config.learners)
        options.push(
          { kind: 'promoteLearner', node: l },
          { kind: 'promoteLearner', node: l },
          { kind: 'removeNode', node: l }
        )
      const honestVoters = config.voters.filter((v) => !this.nodes.get(v)?.byzantine)
      // With f liars the honest voters alone make a quorum only among 3f + 1 voters or more
      // (docs/raft.md, "A member that lies"): the board keeps that many.
      if (config.voters.length > Math.max(this.p.minVoters, 3 * this.liars + 1) && honestVoters.length > 1) {
        for (const v of honestVoters) options.push({ kind: 'removeNode', node: v }, { kind: 'demoteVoter', node: v })
      }
      if (config.voters.length + config.learners.length < this.opts.nodes + 2) {
        options.push(
          { kind: 'addLearner', node: `n${this.nextNodeNumber}` },
          { kind: 'addLearner', node: `n${this.nextNodeNumber}` }
        )
      }
      // A member the operator adds but never starts: making it a voter must be refused (a lone
      // voter that needs it would be wedged).
      if (config.voters.length === 1 || this.rng.chance(0.1))
        options.push({ kind: 'addVoter', node: `n${this.nextNodeNumber}` })
      for (const l of config.learners)
        if (this.nodes.get(l)?.ghost === true && config.voters.length === 1)
          options.push({ kind: 'promoteLearner', node: l })
    }
    if (options.length === 0) return
    // A board that may shrink to one voter often does, to run a lone voter with learners.
    const shrink = options.filter((o) => o.kind === 'removeNode' || o.kind === 'demoteVoter')
    const cc =
      this.p.minVoters === 1 && shrink.length > 0 && this.rng.chance(0.7)
        ? this.rng.pick(shrink)
        : this.rng.pick(options)
    const isNew = (cc.kind === 'addLearner' || cc.kind === 'addVoter') && cc.node === `n${this.nextNodeNumber}`
    if (isNew) {
      const node = this.addNode(this.newNodeId())
      node.ghost = cc.kind === 'addVoter' || this.rng.chance(0.1)
      if (!node.ghost) this.start(node)
    }
    this.stats.confChanges++
    leader.board!.changeMembership(cc, PROPOSAL_TIMEOUT_MS).then(
      () => {},
      (err: unknown) => {
        if (err instanceof BoardError && err.code === 'refused') this.stats.confRefused++
      }
    )
    this.record(leader.id, `changeMembership ${cc.kind}(${cc.node})`)
  }

  private decommissionRemoved(): void {
    const config = this.log.config
    const everMember = new Set<NodeId>()
    for (const c of this.log.configs) for (const id of [...c.config.voters, ...c.config.learners]) everMember.add(id)
    for (const node of this.nodes.values()) {
      if (node.decommissioned || !everMember.has(node.id)) continue
      if (config.voters.includes(node.id) || config.learners.includes(node.id)) continue
      if (node.alive || node.opening) this.crash(node, 'decommissioned')
      node.decommissioned = true
    }
  }

  private faultStep(): void {
    const ids = [...this.nodes.values()].filter((n) => !n.decommissioned && !n.ghost).map((n) => n.id)
    const roll = this.rng.int(100)
    const heal = (): number => this.rng.range(5, 80) * TICK_MS
    const leader = this.honestLeader()
    const live = this.live()
    if (roll < 15) {
      if (live.length > 0) this.crash(this.rng.pick(live), 'fault')
    } else if (roll < 27) {
      if (leader !== null) this.crash(leader, 'leader fault', this.rng.chance(0.6) ? this.rng.range(1, 30) : undefined)
    } else if (roll < 40) {
      const side = new Set(ids.filter(() => this.rng.chance(0.5)))
      const cuts: string[] = []
      for (const a of ids) for (const b of ids) if (side.has(a) !== side.has(b)) cuts.push(this.cut(a, b))
      this.stats.partitions++
      this.record('-', `PARTITION {${[...side].join(',')}}`)
      this.schedule(heal(), { kind: 'heal', cuts })
    } else if (roll < 55) {
      const victim = leader !== null && this.rng.chance(0.6) ? leader.id : this.rng.pick(ids)
      const cuts: string[] = []
      for (const b of ids) if (b !== victim) cuts.push(this.cut(victim, b), this.cut(b, victim))
      this.stats.partitions++
      this.record(victim, 'ISOLATED')
      this.schedule(heal(), { kind: 'heal', cuts })
    } else if (roll < 70) {
      // An event-loop stall: nothing runs, then the timers that came due fire in a bunch.
      if (live.length > 0) {
        const node = this.rng.pick(live)
        node.paused = true
        this.stats.pauses++
        this.record(node.id, 'STALL')
        this.schedule(this.rng.range(2, 30) * TICK_MS, { kind: 'unpause', node, life: node.life })
      }
    } else if (roll < 80) {
      if (this.rng.chance(this.p.slowDiskRate * 3)) {
        const node = this.rng.pick([...this.nodes.values()])
        node.slowDiskUntil = this.now + this.rng.range(5, 50) * TICK_MS
      }
    } else {
      const down = [...this.nodes.values()].filter(
        (n) => !n.alive && !n.opening && !n.refused && !n.decommissioned && !n.ghost
      )
      if (down.length > 0) this.restart(this.rng.pick(down))
    }
  }

  private quietMs(): number {
    return (80 * this.p.electionTicks + 300) * TICK_MS
  }

  private startQuiet(): void {
    this.phase = 'quiet'
    this.quietDeadline = this.now + this.quietMs()
    this.cuts.clear()
    this.record('-', 'QUIET PHASE')
    for (const node of this.nodes.values()) {
      node.slowDiskUntil = 0
      if (node.paused) this.schedule(0, { kind: 'unpause', node, life: node.life })
      if (!node.alive) this.start(node)
    }
  }

  private convergenceProblem(): string | null {
    const leader = this.honestLeader(false)
    if (leader === null) return 'no leader'
    const raft = leader.raft!
    for (const id of this.pending) if (!this.requests.get(id)!.committed) return `request #${id} not committed`
    if (raft.commitIndex !== raft.lastIndex)
      return `leader ${leader.id} has uncommitted entries (${raft.commitIndex} < ${raft.lastIndex})`
    const config = raft.configuration()
    for (const id of [...config.voters, ...config.learners]) {
      const n = this.nodes.get(id)!
      if (n.refused || n.ghost) return `member ${id} is gone (refused or never started) and not yet removed`
      if (n.byzantine) continue
      if (!n.alive) return `member ${id} is down`
      if (n.appliedIndex !== raft.commitIndex)
        return `member ${id} applied ${n.appliedIndex}, leader committed ${raft.commitIndex}`
    }
    return null
  }

  // ===========================================================================================
  // The state machine and the checks

  private async apply(node: SimNode, life: number, entries: readonly Entry[]): Promise<BatchOp[]> {
    const ops: BatchOp[] = []
    if (node.life !== life) return ops
    for (const e of entries) {
      if (e.index !== node.appliedIndex + 1)
        this.fail(new Violation(`${node.id} applied index ${e.index} after ${node.appliedIndex}`))
      if (!node.byzantine) this.recordCommitted(node, e)
      node.appliedIndex = e.index
      const key = Uint8Array.of(
        STATE_PREFIX,
        e.index >>> 24,
        (e.index >>> 16) & 0xff,
        (e.index >>> 8) & 0xff,
        e.index & 0xff
      )
      ops.push({ type: 'put', key, value: e.hash })
    }
    return ops
  }

  private recordCommitted(node: SimNode, e: Entry): void {
    const problem = this.log.appliedProblem(node.id, e)
    if (problem !== null) {
      if (this.props.has('safety')) this.fail(new Violation(problem))
      return
    }
    if (e.index <= this.log.lastIndex) return
    // With liars, committed must mean stored by an honest quorum (honest runs check leader completeness).
    if (this.byzantine !== null && this.props.has('safety')) this.checkHonestQuorum(node, e)
    this.log.add(e, node.raft?.currentTerm ?? 0)
    this.stats.committed = e.index
    if (e.type !== 'confChange' && e.data.length >= 6 && e.data[1] === 0xee) {
      const req = this.requests.get(new DataView(e.data.buffer, e.data.byteOffset).getUint32(2))
      if (req !== undefined) req.committed = true
    }
  }

  /**
   * The first time an entry is applied anywhere it must be stored by the honest part of a quorum of
   * the voters: a liar may add its own acknowledgement, never make up others'.
   */
  private checkHonestQuorum(node: SimNode, e: Entry): void {
    if (e.index === 1) return // the founding configuration: committed by every founding member's bootstrap
    // A change takes effect when appended: the entry committed under the configuration after the
    // committed ones (and itself), or under one appended after it and in effect on the applier.
    let after = this.log.config
    if (e.type === 'confChange') after = applyConfEntry(after, decodeConfEntry(e.data))
    const candidates = [after]
    if (node.raft !== null) candidates.push(node.raft.configuration())
    let best = ''
    for (const config of candidates) {
      if (config.voters.length === 0) return
      let holders = 0
      for (const id of config.voters) {
        const n = this.nodes.get(id)
        if (n === undefined || n.byzantine) continue
        const stored = n.disk.durableGet(entryKey(e.index))
        if (stored !== undefined && equalBytes(storedHash(stored), e.hash)) holders++
      }
      // Committed means: stored by a majority of the honest voters, whatever the liars say.
      const liars = config.voters.filter((id) => this.nodes.get(id)?.byzantine === true).length
      const need = Math.floor((config.voters.length - liars) / 2) + 1
      if (holders >= need) return
      best = `only ${holders} honest voters of [${config.voters.join(',')}] store it (need ${need})`
    }
    this.fail(
      new Violation(
        `${node.id} applied entry ${e.index} (term ${e.term}) that the honest voters did not commit: ${best}`
      )
    )
  }

  /**
   * The durability contract (board/raft/types.ts): a vote leaves only once it (or a later term) is
   * on disk, and a follower's acknowledgement of entries only once they are.
   */
  private checkDurableBeforeSend(node: SimNode, m: Message): void {
    if (m.type === 'voteResp' && !m.reject) {
      const hs = node.disk.durableGet(Uint8Array.of(PREFIX.raftHardState))
      const durable = hs === undefined ? null : readHardStateVote(hs)
      // A later term on disk covers it too: the node can never vote in that term again.
      if (durable === null || durable.term < m.term || (durable.term === m.term && durable.vote !== m.to)) {
        this.fail(
          new Violation(
            `${node.id} sent its vote for ${m.to} in term ${m.term} before it was on disk (durable: ${JSON.stringify(durable)})`
          )
        )
      }
    } else if (m.type === 'appResp' && !m.reject && m.index > 0) {
      if (node.disk.durableGet(entryKey(m.index)) === undefined) {
        this.fail(new Violation(`${node.id} acknowledged entry ${m.index} before it was on disk`))
      }
    }
    // A signed acknowledgement promises never to truncate up to `locked`: that commit index is on disk.
    const ack = m.type === 'appResp' || m.type === 'voteResp' || m.type === 'preVoteResp' ? m.ack : undefined
    if (ack !== undefined) {
      const hs = node.disk.durableGet(Uint8Array.of(PREFIX.raftHardState))
      const commit = hs === undefined ? 0 : readHardStateCommit(hs)
      if (ack.locked > commit)
        this.fail(new Violation(`${node.id} signed that it holds ${ack.locked} committed, but its disk says ${commit}`))
    }
  }

  private checkVote(voter: NodeId, term: number, candidate: NodeId): void {
    const key = `${voter}@${term}`
    const before = this.votes.get(key)
    if (before === undefined) this.votes.set(key, candidate)
    else if (before !== candidate && this.props.has('safety'))
      this.fail(new Violation(`${voter} voted twice in term ${term}: for ${before}, then for ${candidate}`))
  }

  private onAlarm(node: SimNode, alarm: Alarm): void {
    this.stats.alarms++
    if (node.byzantine) return
    const liar = this.nodes.get(alarm.from)?.byzantine === true
    if (!liar && this.props.has('alarms')) {
      const detail = JSON.stringify(alarm, (_k, v) => (v instanceof Uint8Array ? toHex(v).slice(0, 12) : v))
      this.fail(new Violation(`${node.id} raised an alarm against honest ${alarm.from}: ${detail}`))
    }
  }

  private checkStep(): void {
    if (this.pendingFailure !== null) throw this.pendingFailure
    for (const node of this.nodes.values()) {
      if (!node.alive || node.byzantine) continue
      const raft = node.raft!
      const role = raft.currentRole
      const term = raft.currentTerm
      if (term > this.stats.maxTerm) this.stats.maxTerm = term
      if (role === 'leader') {
        this.log.committedUpTo(raft.commitIndex, term)
        if (node.lastRole !== 'leader' || node.lastTerm !== term) this.onBecameLeader(node, term)
      }
      node.lastRole = role
      node.lastTerm = term
    }
  }

  private onBecameLeader(node: SimNode, term: number): void {
    this.stats.elections++
    if (!this.props.has('safety')) return
    this.record(node.id, `LEADS term ${term}`)
    this.log.checkNewLeader(node.id, term, node.raft!)
  }

  private record(node: string, text: string): void {
    this.trace.push(`t=${String(this.now).padStart(7)} ${node.padEnd(4)} ${text}`)
    if (this.trace.length > this.traceLength) this.trace.shift()
  }
}

const TRACE_MESSAGES = process.env.SIM_TRACE_MESSAGES === '1'

function describeOps(ops: readonly BatchOp[]): string {
  return ops
    .map((o) => {
      const p = o.key[0]!
      if (p === PREFIX.raftHardState && o.type === 'put') {
        const r = new Reader(o.value, 'hs')
        r.u8('v')
        const term = r.varint('t')
        return `hs(term ${term} commit ${r.varint('c')})`
      }
      if (p === PREFIX.raftSnapshot && o.type === 'put') return `snap@${readVarint(o.value, 1)}`
      if (p === PREFIX.raftEntry)
        return `${o.type === 'del' ? 'del' : 'e'}${Number(new DataView(o.key.buffer, o.key.byteOffset).getBigUint64(1))}`
      if (p === PREFIX.boardApplied && o.type === 'put') return `applied@${readVarint(o.value, 0)}`
      return ''
    })
    .filter((x) => x !== '')
    .join(' ')
}

function describe(m: Message): string {
  const skip = new Set(['to', 'type', 'prevHash', 'snapshot', 'context'])
  const fields = Object.entries(m)
    .filter(([k]) => !skip.has(k))
    .map(([k, v]) => `${k}=${Array.isArray(v) ? `[${v.length}]` : String(v)}`)
  return `${m.type} ${fields.join(' ')}${m.type === 'snap' ? ` snap@${m.snapshot.meta.index}` : ''}`
}

/**
 * Lets the microtasks the last event set off run: the driver's and the store's promises, which the
 * simulated store, timers and turns resolve (nothing in a run waits for real I/O or a real timer).
 * A chain deeper than DRAIN_HOPS goes on during the next event's hops: still in one fixed order, so
 * a seed replays exactly; yielding to the event loop instead (setImmediate) costs far more.
 */
const DRAIN_HOPS = 12

const RESOLVED = Promise.resolve()

/**
 * Resolves after DRAIN_HOPS rounds of the microtask queue (the last is the await's own): a chain of
 * reactions on a settled promise costs far less than as many awaits (and queueMicrotask, which
 * goes through async_hooks, costs more).
 */
function drain(): Promise<void> {
  return new Promise<void>((resolve) => {
    let hops = 1
    const hop = (): void => {
      if (++hops < DRAIN_HOPS) void RESOLVED.then(hop)
      else resolve()
    }
    void RESOLVED.then(hop)
  })
}

/** The hash in a stored entry (storage/raft-store.ts, putEntry: version, term, type, hash, data). */
function storedHash(value: Uint8Array): Uint8Array {
  const r = new Reader(value, 'entry')
  r.u8('version')
  r.varint('term')
  r.u8('type')
  return r.bytes32('hash')
}

function readHardStateCommit(bytes: Uint8Array): number {
  const r = new Reader(bytes, 'hard state')
  r.u8('version')
  r.varint('term')
  return r.varint('commit')
}

function readHardStateVote(bytes: Uint8Array): { term: number; vote: string | null } {
  const r = new Reader(bytes, 'hard state')
  r.u8('version')
  const term = r.varint('term')
  r.varint('commit')
  const vote = r.u8('has vote') === 1 ? r.string('vote', 1024) : null
  return { term, vote }
}

function readVarint(bytes: Uint8Array, at: number): number {
  const r = new Reader(bytes.subarray(at), 'snapshot metadata')
  return r.varint('index')
}
