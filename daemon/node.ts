import type { Configuration, Entry } from '../board/raft/index.js'
import { InconsistentStoreError } from '../board/raft/index.js'
import { toHex } from '../protocol/bytes.js'
import { DatabaseLockedError, openDatabase, type Database } from '../storage/database.js'
import { RaftStore, StoreCorruptError } from '../storage/raft-store.js'
import { catchUpPoolBoard, loadPoolBoard, PoolApplier } from '../storage/pool-store.js'
import { SignatureCache } from '../board/signature-cache.js'
import type { PoolBoard, ApplyResult } from '../board/pool-board.js'
import { AdminApi, type Route } from './api/server.js'
import { Board, type BoardApplier } from './replica/board.js'
import { boardRoutes } from './api/board-routes.js'
import { formatHostPort, type HostPort, type NodeConfig } from './host/config.js'
import type { DataDir, NodeKeys } from './host/datadir.js'
import { UserError } from './host/errors.js'
import { requireMembers } from './host/preflight.js'
import type { LogCategory, Logger } from './host/log.js'
import { MemberNetwork } from './net/p2p.js'
import { RaftTransport } from './replica/transport/index.js'
import { SignatureWorkers } from './replica/signature-workers.js'
import { signatureChecksOf } from '../board/signatures.js'
import { MemberRpc } from './net/rpc.js'
import { ProposalRouter } from './replica/forward.js'
import { PoolService } from './pool/service.js'
import { poolRoutes } from './api/pool-routes.js'
import { ChainTicker } from './pool/chain.js'
import { Defenses } from './defense/index.js'
import { Censor } from './lab/node/censor.js'
import { coalitionDrop, rehashInbound } from './lab/node/coalition.js'
import { labRoutes } from './lab/node/api.js'
import { VERSION } from './host/version.js'
import { NodeMetrics } from './metrics.js'

export interface NodeStatus {
  name: string
  version: string
  pid: number
  datadir: string
  peerId: string
  memberKey: string
  listenAddresses: string[]
  api: string
  connectedPeers: Array<{ name: string, peerId: string }>
  connectedPeerCount: number
  memberCount: number
  uptimeSeconds: number
  lab: boolean
  /** Lab mode: this node plays a coalition member (daemon/lab/node/coalition.ts). */
  labCoalition: boolean
  cut: boolean
  /** This member in the pool, as this node has applied it (null before the genesis or once kicked out). */
  pool: { poolId: string | null, poolLabel: string | null, balanceSats: bigint | null, chainHeight: number }
  board: { role: string, term: number, leader: { name: string | null, peerId: string } | null, commit: number, applied: number }
  /** What went wrong that an operator should look at: board alarms, defense detections. */
  alarms: { board: number, defense: number }
}

export interface NodeOptions {
  dir: DataDir
  config: NodeConfig
  keys: NodeKeys
  logger: Logger
  /** The logger of one part of the node (net, board, pool, defense); default: `logger`. */
  category?: (cat: LogCategory) => Logger
  /** The node can no longer keep its promises (its store failed): the process must stop. */
  onFatal: (err: Error) => void
}

const SHUTDOWN_STEP_TIMEOUT_MS = 10_000
const PROPOSAL_TIMEOUT_MS = 10_000
/** How long the pool gauges of /metrics reuse one pool view. */
const POOL_VIEW_CACHE_MS = 1_000

/**
 * A participant node: owns the database (and with it the data directory's lock), the member
 * network, the board and the admin API. `start` brings them up in that order, `stop` takes them
 * down in reverse.
 */
export class PoolboardNode {
  private readonly startedAtMs = Date.now()
  private metrics: NodeMetrics | undefined
  private api: AdminApi | undefined
  private apiAddress: HostPort | undefined
  private stopping: Promise<void> | undefined

  /** Listeners of every board entry's outcome on this node (the pool service). */
  private readonly resultListeners: Array<(result: ApplyResult) => void> = []
  /** The pool on top of the board, and the simulated chain's block timer. */
  private pool: PoolService | undefined
  private chainTicker: ChainTicker | undefined
  private defenses: Defenses | undefined
  private signatureWorkers: SignatureWorkers | undefined

  private constructor (
    private readonly options: NodeOptions,
    private readonly db: Database,
    private readonly network: MemberNetwork,
    private readonly transport: RaftTransport,
    private readonly board: Board,
    private readonly poolBoard: PoolBoard,
    private readonly rpc: MemberRpc,
    private readonly router: ProposalRouter,
    private readonly censor: Censor
  ) {}

  static async start (options: NodeOptions): Promise<PoolboardNode> {
    const { dir, config, keys, logger } = options
    const log = options.category ?? (() => logger)
    requireMembers(dir, config, keys)
    const db = await openLocked(dir)
    dir.writePid()
    let network: MemberNetwork | undefined
    let transport: RaftTransport | undefined
    let board: Board | undefined
    let rpc: MemberRpc | undefined
    let signatureWorkers: SignatureWorkers | undefined
    try {
      const store = await RaftStore.open(db)
      const signatureCache = new SignatureCache()
      const poolBoard = await loadPoolBoard(db, { signatureCache })
      const workers = new SignatureWorkers(signatureCache, log('board'))
      signatureWorkers = workers
      network = await MemberNetwork.create({ privateKey: keys.libp2pKey, peerId: keys.peerId, listen: config.listen, members: config.members, logger: log('net') })
      const net = network
      const isMember = (id: string): boolean => net.isMember(id)
      transport = new RaftTransport({ libp2p: net.libp2p, selfId: keys.peerId, isMember, logger: log('board') })
      const listeners: Array<(result: ApplyResult) => void> = []
      // Adversarial hooks exist only in lab mode; a coalition member (lab) also checks no hashes.
      const coalition = config.lab && config.labCoalition
      let defenses: Defenses | undefined
      const censor = new Censor()
      let nodeRef: PoolboardNode | undefined
      let knownLeader: string | null = null
      board = await Board.open({
        selfId: keys.peerId,
        store,
        transport,
        applier: withAppliedHook(new PoolApplier(poolBoard, (result) => { for (const l of listeners) l(result) }), (entries) => { defenses?.onApplied(entries) }),
        logger: log('board'),
        timing: config.board,
        snapshotEveryEntries: config.board.snapshotEveryEntries,
        initialConfiguration: initialConfiguration(config),
        onFatal: options.onFatal,
        verifyHashChain: config.defenses.hashChain && !coalition,
        onAlarm: (alarm) => { defenses?.onAlarm(alarm) },
        onSoftState: (_role, leader) => {
          if (leader !== knownLeader) nodeRef?.metrics?.leaderChanged()
          knownLeader = leader
        },
        prepareApply: async (entries) => { await workers.prepare(entries.flatMap(signatureChecksOf)) },
        labInbound: coalition ? rehashInbound : undefined,
        labDrop: config.lab ? (data) => censor.reason(data) ?? (coalition ? coalitionDrop(data) : null) : undefined
      })
      // The pool records and the applied index are written in one batch, so they agree; a store
      // from before the pool records existed is brought up to date from the log.
      if (poolBoard.appliedIndex < board.appliedIndex) await catchUpPoolBoard(poolBoard, store, db, board.appliedIndex)
      rpc = new MemberRpc({ libp2p: net.libp2p, isMember, logger: log('net') })
      const router = new ProposalRouter(board, rpc, log('board'))
      defenses = new Defenses({
        config,
        selfPeerId: keys.peerId,
        rpc,
        board,
        poolBoard,
        connectedPeerIds: () => net.connectedMembers().map((m) => m.peerId),
        logger: log('defense')
      })
      const node = new PoolboardNode(options, db, network, transport, board, poolBoard, rpc, router, censor)
      nodeRef = node
      node.defenses = defenses
      node.signatureWorkers = workers
      const nodeDefenses = defenses
      net.libp2p.addEventListener('peer:connect', (event) => { nodeDefenses.onPeerConnected(event.detail.toString()) })
      listeners.push((result) => { for (const l of node.resultListeners) l(result) })
      const pool = new PoolService({
        selfPeerId: keys.peerId,
        memberKey: keys.memberKey,
        memberSecret: keys.memberSecret,
        config,
        pubsub: net.libp2p.services.pubsub,
        rpc,
        board,
        isMember,
        poolBoard,
        db,
        propose: async (data, timeoutMs) => await node.proposeEntry(data, timeoutMs),
        connectedPeerIds: () => net.connectedMembers().map((m) => m.peerId),
        logger: log('pool'),
        onAnswer: (code) => { node.metrics?.answered(code) },
        defenses
      })
      node.pool = pool
      node.onBoardResult((result) => { pool.onBoardResult(result) })
      const chainBoard = board
      node.chainTicker = new ChainTicker({ intervalS: config.blockIntervalS, isLeader: () => chainBoard.role === 'leader', entries: pool.entries, logger: log('pool') })
      node.registerMetrics()
      await network.start()
      await transport.start()
      await router.start()
      await defenses.start()
      await pool.start()
      board.start()
      node.chainTicker.start()
      await node.startApi()
      logger.info({ peerId: keys.peerId, api: formatHostPort(node.apiAddress!), members: config.members.length, lab: config.lab }, 'node started')
      return node
    } catch (err) {
      await board?.stop().catch(() => {})
      await rpc?.stop().catch(() => {})
      await signatureWorkers?.stop().catch(() => {})
      await transport?.stop().catch(() => {})
      await network?.stop().catch(() => {})
      await db.close().catch(() => {})
      dir.removePid()
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new UserError(`an address is already in use: ${(err as Error).message}`)
      if (err instanceof StoreCorruptError || err instanceof InconsistentStoreError) {
        throw new UserError(`refusing to start: ${err.message} (database ${dir.databasePath}); restore it from a backup or re-create this node and let it catch up`)
      }
      throw err
    }
  }

  status (): NodeStatus {
    const { dir, config, keys } = this.options
    const connected = this.network.connectedMembers()
    return {
      name: config.name,
      version: VERSION,
      pid: process.pid,
      datadir: dir.path,
      peerId: keys.peerId,
      memberKey: toHex(keys.memberKey),
      listenAddresses: this.network.listenAddresses(),
      api: this.apiAddress === undefined ? '' : formatHostPort(this.apiAddress),
      connectedPeers: connected.map((m) => ({ name: m.name, peerId: m.peerId })),
      connectedPeerCount: connected.length,
      memberCount: config.members.length,
      uptimeSeconds: Math.floor((Date.now() - this.startedAtMs) / 1000),
      lab: config.lab,
      labCoalition: config.lab && config.labCoalition,
      cut: this.network.isCut(),
      pool: this.poolSummary(),
      board: {
        role: this.board.role,
        term: this.board.term,
        leader: this.board.leader === null ? null : { name: config.members.find((m) => m.peerId === this.board.leader)?.name ?? null, peerId: this.board.leader },
        commit: this.board.commit,
        applied: this.board.appliedIndex
      },
      alarms: { board: this.board.alarms, defense: this.defenses?.log.count ?? 0 }
    }
  }

  private poolSummary (): NodeStatus['pool'] {
    const s = this.pool?.status()
    if (s === undefined || s.poolId === null) return { poolId: null, poolLabel: null, balanceSats: null, chainHeight: this.poolBoard.chainHeight }
    return { poolId: s.poolId, poolLabel: s.me.poolLabel, balanceSats: s.me.poolLabel === null ? null : s.balances[s.me.name] ?? null, chainHeight: s.chainHeight }
  }

  /** Proposes a board entry through whichever node leads (see forward.ts). */
  async proposeEntry (data: Uint8Array, timeoutMs: number): Promise<{ index: number, term: number }> {
    if (this.metrics === undefined) return await this.router.propose(data, timeoutMs)
    return await this.metrics.timeProposal(async () => await this.router.propose(data, timeoutMs))
  }

  /** Calls `listener` with the outcome of every board entry applied on this node from now on. */
  onBoardResult (listener: (result: ApplyResult) => void): void {
    this.resultListeners.push(listener)
  }

  /** Stops accepting API calls, stops the board, closes libp2p, then the database (which releases the lock). */
  async stop (reason: string): Promise<void> {
    this.stopping ??= this.shutdown(reason)
    await this.stopping
  }

  private async shutdown (reason: string): Promise<void> {
    const { dir, logger } = this.options
    logger.info({ reason }, 'stopping')
    dir.removeCookie()
    await withTimeout(this.api?.stop(), 'admin API')
    this.chainTicker?.stop()
    this.pool?.stop()
    this.defenses?.stop()
    await withTimeout(this.board.stop(), 'board')
    await withTimeout(this.rpc.stop(), 'member requests')
    await withTimeout(this.transport.stop(), 'raft transport')
    await withTimeout(this.network.stop(), 'libp2p')
    await withTimeout(this.signatureWorkers?.stop(), 'signature workers')
    await withTimeout(this.db.close(), 'database')
    dir.removePid()
    logger.info('stopped')
  }

  private async startApi (): Promise<void> {
    const { dir, config } = this.options
    const password = dir.writeCookie()
    this.api = new AdminApi({
      listen: config.api,
      password,
      logger: this.options.logger,
      routes: this.routes(),
      publicRoutes: [{ path: '/metrics', contentType: this.metrics!.registry.contentType, handler: async () => await this.metrics!.registry.metrics() }]
    })
    try {
      this.apiAddress = await this.api.start()
    } catch (err) {
      dir.removeCookie()
      throw err
    }
  }

  private routes (): Route[] {
    const { config } = this.options
    return [
      { method: 'GET', path: '/v1/status', handler: async () => this.status() },
      {
        method: 'POST',
        path: '/v1/stop',
        handler: async () => {
          setImmediate(() => { process.kill(process.pid, 'SIGTERM') })
          return { stopping: true }
        }
      },
      { method: 'POST', path: '/v1/network/cut', handler: async () => { await this.network.cut(); return { cut: true } } },
      { method: 'POST', path: '/v1/network/heal', handler: async () => { this.network.heal(); return { cut: false } } },
      ...boardRoutes({ board: this.board, members: config.members, lab: config.lab, proposalTimeoutMs: PROPOSAL_TIMEOUT_MS }),
      ...(this.pool === undefined ? [] : poolRoutes({ pool: this.pool, blockIntervalS: config.blockIntervalS, metrics: this.metrics })),
      ...(this.defenses === undefined ? [] : [{ method: 'GET' as const, path: '/v1/defense', handler: async () => this.defenses!.status() }]),
      ...labRoutes({ lab: config.lab, censor: this.censor, pool: this.pool })
    ]
  }

  private registerMetrics (): void {
    // One scrape reads several pool gauges: the view is built once per scrape, not once per gauge.
    let cached: { atMs: number, view: ReturnType<PoolService['status']> | null } | undefined
    const poolView = (): ReturnType<PoolService['status']> | null => {
      const nowMs = Date.now()
      if (cached === undefined || nowMs - cached.atMs > POOL_VIEW_CACHE_MS) {
        const s = this.pool?.status()
        cached = { atMs: nowMs, view: s === undefined || s.poolId === null ? null : s }
      }
      return cached.view
    }
    this.metrics = new NodeMetrics({
      connectedMembers: () => this.network.connectedMembers().length,
      uptimeSeconds: () => (Date.now() - this.startedAtMs) / 1000,
      board: () => ({ term: this.board.term, role: this.board.role, leader: this.board.leader, commit: this.board.commit, applied: this.board.appliedIndex, alarms: this.board.alarms }),
      signatureCacheHits: () => this.poolBoard.signatureCache.stats().hits,
      defenseAlarms: () => this.defenses?.log.count ?? 0,
      gossip: () => {
        const g = this.pool?.gossip.stats()
        return { received: g?.received ?? 0, dropped: Object.values(g?.dropped ?? {}).reduce((a, b) => a + b, 0) }
      },
      pool: () => {
        const s = poolView()
        if (s === null) return null
        const open = [s.tree?.status, ...s.partitions.map((p) => p.status)].filter((x) => x === 'open').length
        return { state: s.state ?? 0, balances: s.balances, openPools: open, partitions: s.partitions.length, evidence: s.evidenceCount }
      }
    })
  }
}

/** An applier that also shows every applied entry to `hook` (the defenses remember their digests). */
function withAppliedHook (applier: BoardApplier, hook: (entries: readonly Entry[]) => void): BoardApplier {
  return { apply: async (entries) => { hook(entries); return await applier.apply(entries) } }
}

/** The board of a new cluster: the configured voters (default: every member), the others learners. */
function initialConfiguration (config: NodeConfig): Configuration {
  const voterNames = config.board.voters ?? config.members.map((m) => m.name)
  return {
    voters: config.members.filter((m) => voterNames.includes(m.name)).map((m) => m.peerId),
    learners: config.members.filter((m) => !voterNames.includes(m.name)).map((m) => m.peerId)
  }
}

async function openLocked (dir: DataDir): Promise<Database> {
  try {
    return await openDatabase(dir.databasePath, { create: false })
  } catch (err) {
    if (err instanceof DatabaseLockedError) {
      const pid = dir.readPid()
      throw new UserError(`another poolboard node is already running on ${dir.path}${pid === undefined ? '' : ` (pid ${pid})`}`)
    }
    throw err
  }
}

async function withTimeout (work: Promise<void> | undefined, what: string): Promise<void> {
  if (work === undefined) return
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(`${what} did not stop within ${SHUTDOWN_STEP_TIMEOUT_MS} ms`)) }, SHUTDOWN_STEP_TIMEOUT_MS)
  })
  try {
    await Promise.race([work, timeout])
  } finally {
    clearTimeout(timer)
  }
}
