import { join } from 'node:path'
import type { Alarm, Configuration } from '../board/raft/index.js'
import { InconsistentStoreError } from '../board/raft/index.js'
import { toHex } from '../protocol/bytes.js'
import { DatabaseLockedError, openDatabase, type Database } from '../storage/database.js'
import { RaftStore, StoreCorruptError } from '../storage/raft-store.js'
import { SignatureCache } from '../board/signature-cache.js'
import type { PoolBoard } from '../board/pool-board.js'
import { AdminApi, type Route } from './api/server.js'
import { PeerIdVotes } from './replica/votes.js'
import { PromiseFile } from '../storage/promise-file.js'
import type { NodeStatus } from './api/types.js'
import { BoardReplica } from './replica/board.js'
import { catchUpPoolBoard, loadPoolBoard, PoolApplier, type AppliedEvents } from './replica/pool-applier.js'
import { EventSource } from './host/events.js'
import { EntryProposer } from './pool/propose.js'
import { boardRoutes } from './api/board-routes.js'
import { formatHostPort, type HostPort, type NodeConfig } from './host/config.js'
import type { DataDir, NodeKeys } from './host/datadir.js'
import { UserError } from './host/errors.js'
import type { LogCategory, Logger } from './host/log.js'
import { MemberNetwork } from './net/p2p.js'
import { RaftTransport } from './replica/transport/index.js'
import { SignatureWorkers } from './replica/signature-workers.js'
import { signatureChecksOf } from '../board/signatures.js'
import { MemberRpc } from './net/rpc.js'
import { ProposalRouter } from './replica/forward.js'
import { PoolService } from './pool/service.js'
import { poolRoutes } from './api/pool-routes.js'
import { ChainTicker } from './pool/simulated-chain.js'
import { Defenses } from './defense/index.js'
import { Censor } from './lab/node/censor.js'
import { coalitionDrop, rehashInbound } from './lab/node/coalition.js'
import { labRoutes } from './lab/node/api.js'
import { LabEquivocation } from './lab/node/equivocate.js'
import { VERSION } from './host/version.js'
import { NodeDashboard } from './dashboard/node-page.js'
import { NodeMetrics } from './host/metrics.js'
import { requireMembers } from './host/preflight.js'

export type { NodeStatus } from './api/types.js'

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
/** In the data directory, beside db/: what the board promised, kept outside LevelDB (storage/promise-file.ts). */
const PROMISE_FILE = 'board-promise'
const PROPOSAL_TIMEOUT_MS = 10_000
/** How long the pool gauges of /metrics reuse one pool view. */
const POOL_VIEW_CACHE_MS = 1_000

/** Everything a node is made of, built in dependency order by PoolboardNode.start. */
interface NodeParts {
  db: Database
  network: MemberNetwork
  transport: RaftTransport
  signatureWorkers: SignatureWorkers
  board: BoardReplica
  poolBoard: PoolBoard
  rpc: MemberRpc
  router: ProposalRouter
  defenses: Defenses
  pool: PoolService
  chainTicker: ChainTicker
  censor: Censor
  equivocation: LabEquivocation
  /** What this node applies (the pool applier's one event source). */
  applied: AppliedEvents
}

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

  /** The dashboard pages, served with the admin API (daemon/dashboard/node-page.ts). */
  private dashboard: NodeDashboard | undefined

  private constructor(
    private readonly options: NodeOptions,
    private readonly parts: NodeParts
  ) {}

  static async start(options: NodeOptions): Promise<PoolboardNode> {
    const { dir, config, keys, logger } = options
    const log = options.category ?? (() => logger)
    requireMembers(dir, config, keys)
    const db = await openLocked(dir)
    dir.writePid()
    let network: MemberNetwork | undefined
    let transport: RaftTransport | undefined
    let board: BoardReplica | undefined
    let rpc: MemberRpc | undefined
    let signatureWorkers: SignatureWorkers | undefined
    try {
      const store = await RaftStore.open(db)
      const promises = await PromiseFile.open(join(dir.path, PROMISE_FILE))
      const signatureCache = new SignatureCache()
      const poolBoard = await loadPoolBoard(db, { signatureCache })
      const workers = new SignatureWorkers(signatureCache, log('board'))
      signatureWorkers = workers
      network = await MemberNetwork.create({
        privateKey: keys.libp2pKey,
        peerId: keys.peerId,
        listen: config.listen,
        members: config.members,
        voterPeerIds: initialConfiguration(config, keys.peerId).voters,
        logger: log('net')
      })
      const net = network
      const isMember = (id: string): boolean => net.isMember(id)
      const connectedPeerIds = (): string[] => net.connectedMembers().map((m) => m.peerId)
      transport = new RaftTransport({ libp2p: net.libp2p, selfId: keys.peerId, isMember, logger: log('board') })
      // The one way back from the board: what is applied, and the core's alarms.
      const applier = new PoolApplier(poolBoard)
      const alarms = new EventSource<Alarm>()
      // Adversarial hooks exist only in lab mode; a coalition member (lab) also checks no hashes.
      const coalition = config.lab && config.labCoalition
      const censor = new Censor()
      let nodeRef: PoolboardNode | undefined
      let knownLeader: string | null = null
      board = await BoardReplica.open({
        selfId: keys.peerId,
        store,
        transport,
        applier,
        logger: log('board'),
        timing: config.board,
        snapshotEveryEntries: config.board.snapshotEveryEntries,
        initialConfiguration: initialConfiguration(config, keys.peerId),
        onFatal: options.onFatal,
        verifyHashChain: config.defenses.hashChain && !coalition,
        votes: new PeerIdVotes(keys.libp2pKey, isMember),
        faultyVoters: config.board.faultyVoters,
        promises,
        onAlarm: (alarm) => {
          alarms.emit(alarm)
        },
        onSoftState: (_role, leader) => {
          if (leader !== knownLeader) nodeRef?.metrics?.leaderChanged()
          knownLeader = leader
        },
        prepareApply: async (entries) => {
          await workers.prepare(entries.flatMap(signatureChecksOf))
        },
        labInbound: coalition ? rehashInbound : undefined,
        labDrop: config.lab ? (data) => censor.reason(data) ?? (coalition ? coalitionDrop(data) : null) : undefined
      })
      // The pool records and the applied index are written in one batch, so they agree; a store
      // from before the pool records existed is brought up to date from the log.
      if (poolBoard.appliedIndex < board.appliedIndex) await catchUpPoolBoard(poolBoard, store, db, board.appliedIndex)
      rpc = new MemberRpc({ libp2p: net.libp2p, isMember, logger: log('net') })
      const router = new ProposalRouter(board, rpc, log('board'))
      const defenses = new Defenses({
        config,
        selfPeerId: keys.peerId,
        rpc,
        board,
        poolBoard,
        connectedPeerIds,
        logger: log('defense'),
        applied: applier.applied,
        alarms
      })
      net.libp2p.addEventListener('peer:connect', (event) => {
        defenses.onPeerConnected(event.detail.toString())
      })
      // A quiet board ticks slowly (docs/operations.md, "What wakes an idle node"); links wake it.
      const replica = board
      net.libp2p.addEventListener('peer:connect', (event) => {
        replica.memberLinkChanged(event.detail.toString(), true)
      })
      net.libp2p.addEventListener('peer:disconnect', (event) => {
        replica.memberLinkChanged(event.detail.toString(), false)
      })
      // Every board proposal of this node is timed (poolboard_board_commit_seconds).
      const timedRouter = {
        propose: async (data: Uint8Array, timeoutMs: number) =>
          nodeRef?.metrics === undefined
            ? await router.propose(data, timeoutMs)
            : await nodeRef.metrics.timeProposal(async () => await router.propose(data, timeoutMs))
      }
      const entries = new EntryProposer({ router: timedRouter, poolBoard, applied: applier.applied })
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
        entries,
        applied: applier.applied,
        connectedPeerIds,
        logger: log('pool'),
        onAnswer: (code) => {
          nodeRef?.metrics?.answered(code)
        },
        defenses
      })
      const equivocation = new LabEquivocation({
        lab: config.lab,
        labCoalition: config.labCoalition,
        memberKey: keys.memberKey,
        memberSecret: keys.memberSecret,
        poolBoard,
        read: pool.read,
        signer: pool.signer,
        proposer: pool.proposer,
        words: pool.words,
        logger
      })
      const leaderBoard = board
      const chainTicker = new ChainTicker({
        intervalS: config.blockIntervalS,
        isLeader: () => leaderBoard.role === 'leader',
        entries,
        logger: log('pool')
      })
      const node = new PoolboardNode(options, {
        db,
        network,
        transport,
        signatureWorkers: workers,
        board,
        poolBoard,
        rpc,
        router,
        defenses,
        pool,
        chainTicker,
        censor,
        equivocation,
        applied: applier.applied
      })
      nodeRef = node
      node.registerMetrics()
      await network.start()
      await transport.start()
      await router.start()
      await defenses.start()
      await pool.start()
      board.start()
      chainTicker.start()
      await node.startApi()
      logger.info(
        { peerId: keys.peerId, api: formatHostPort(node.apiAddress!), members: config.members.length, lab: config.lab },
        'node started'
      )
      return node
    } catch (err) {
      await board?.stop().catch(() => {})
      await rpc?.stop().catch(() => {})
      await signatureWorkers?.stop().catch(() => {})
      await transport?.stop().catch(() => {})
      await network?.stop().catch(() => {})
      await db.close().catch(() => {})
      dir.removePid()
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE')
        throw new UserError(`an address is already in use: ${(err as Error).message}`)
      if (err instanceof StoreCorruptError || err instanceof InconsistentStoreError) {
        throw new UserError(
          `refusing to start: ${err.message} (database ${dir.databasePath}); restore it from a backup or re-create this node and let it catch up`
        )
      }
      throw err
    }
  }

  status(): NodeStatus {
    const { dir, config, keys } = this.options
    const connected = this.parts.network.connectedMembers()
    return {
      name: config.name,
      version: VERSION,
      pid: process.pid,
      datadir: dir.path,
      peerId: keys.peerId,
      memberKey: toHex(keys.memberKey),
      listenAddresses: this.parts.network.listenAddresses(),
      api: this.apiAddress === undefined ? '' : formatHostPort(this.apiAddress),
      connectedPeers: connected.map((m) => ({ name: m.name, peerId: m.peerId })),
      connectedPeerCount: connected.length,
      memberCount: config.members.length,
      uptimeSeconds: Math.floor((Date.now() - this.startedAtMs) / 1000),
      lab: config.lab,
      labCoalition: config.lab && config.labCoalition,
      cut: this.parts.network.isCut(),
      pool: this.poolSummary(),
      board: {
        role: this.parts.board.role,
        term: this.parts.board.term,
        leader:
          this.parts.board.leader === null
            ? null
            : {
                name: config.members.find((m) => m.peerId === this.parts.board.leader)?.name ?? null,
                peerId: this.parts.board.leader
              },
        commit: this.parts.board.commit,
        applied: this.parts.board.appliedIndex
      },
      alarms: { board: this.parts.board.alarms, defense: this.parts.defenses.log.count }
    }
  }

  private poolSummary(): NodeStatus['pool'] {
    const s = this.parts.pool.status()
    if (s.poolId === null)
      return { poolId: null, poolLabel: null, balanceSats: null, chainHeight: this.parts.poolBoard.chainHeight }
    return {
      poolId: s.poolId,
      poolLabel: s.me.poolLabel,
      balanceSats: s.me.poolLabel === null ? null : (s.balances[s.me.name] ?? null),
      chainHeight: s.chainHeight
    }
  }

  /** Stops accepting API calls, stops the board, closes libp2p, then the database (which releases the lock). */
  async stop(reason: string): Promise<void> {
    this.stopping ??= this.shutdown(reason)
    await this.stopping
  }

  private async shutdown(reason: string): Promise<void> {
    const { dir, logger } = this.options
    logger.info({ reason }, 'stopping')
    dir.removeCookie()
    this.dashboard?.site.stop()
    await withTimeout(this.api?.stop(), 'admin API')
    this.parts.chainTicker.stop()
    this.parts.pool.stop()
    this.parts.defenses.stop()
    await withTimeout(this.parts.board.stop(), 'board')
    await withTimeout(this.parts.rpc.stop(), 'member requests')
    await withTimeout(this.parts.transport.stop(), 'raft transport')
    await withTimeout(this.parts.network.stop(), 'libp2p')
    await withTimeout(this.parts.signatureWorkers.stop(), 'signature workers')
    await withTimeout(this.parts.db.close(), 'database')
    dir.removePid()
    logger.info('stopped')
  }

  private async startApi(): Promise<void> {
    const { dir, config } = this.options
    const password = dir.writeCookie()
    const dashboard = new NodeDashboard({
      logger: this.options.logger,
      apiAddress: () => this.apiAddress,
      cookieSuffix: this.options.keys.peerId.slice(-12)
    })
    this.dashboard = dashboard
    this.parts.applied.subscribe(({ results }) => {
      for (const r of results) dashboard.onBoardResult(r)
    })
    this.api = new AdminApi({
      listen: config.api,
      password,
      logger: this.options.logger,
      routes: dashboard.withRoutes(this.routes()),
      publicRoutes: [
        {
          path: '/metrics',
          contentType: this.metrics!.registry.contentType,
          handler: async () => await this.metrics!.registry.metrics()
        }
      ],
      pages: dashboard.site
    })
    try {
      this.apiAddress = await this.api.start()
      dashboard.site.listeningOn(this.apiAddress.port)
    } catch (err) {
      dir.removeCookie()
      throw err
    }
  }

  private routes(): Route[] {
    const { config } = this.options
    return [
      { method: 'GET', path: '/v1/status', handler: async () => this.status() },
      {
        method: 'POST',
        path: '/v1/stop',
        handler: async () => {
          setImmediate(() => {
            process.kill(process.pid, 'SIGTERM')
          })
          return { stopping: true }
        }
      },
      {
        method: 'POST',
        path: '/v1/network/cut',
        handler: async () => {
          await this.parts.network.cut()
          return { cut: true }
        }
      },
      {
        method: 'POST',
        path: '/v1/network/heal',
        handler: async () => {
          this.parts.network.heal()
          return { cut: false }
        }
      },
      ...boardRoutes({
        board: this.parts.board,
        members: config.members,
        lab: config.lab,
        proposalTimeoutMs: PROPOSAL_TIMEOUT_MS
      }),
      ...poolRoutes({ pool: this.parts.pool, blockIntervalS: config.blockIntervalS, metrics: this.metrics }),
      { method: 'GET', path: '/v1/defense', handler: async () => this.parts.defenses.status() },
      ...labRoutes({
        lab: config.lab,
        censor: this.parts.censor,
        pool: this.parts.pool,
        equivocation: this.parts.equivocation
      })
    ]
  }

  private registerMetrics(): void {
    const { network, board, poolBoard, defenses, pool } = this.parts
    // One scrape reads several pool gauges: the view is built once per scrape, not once per gauge.
    let cached: { atMs: number; view: ReturnType<PoolService['status']> | null } | undefined
    const poolView = (): ReturnType<PoolService['status']> | null => {
      const nowMs = Date.now()
      if (cached === undefined || nowMs - cached.atMs > POOL_VIEW_CACHE_MS) {
        const s = pool.status()
        cached = { atMs: nowMs, view: s.poolId === null ? null : s }
      }
      return cached.view
    }
    this.metrics = new NodeMetrics({
      connectedMembers: () => network.connectedMembers().length,
      uptimeSeconds: () => (Date.now() - this.startedAtMs) / 1000,
      board: () => ({
        term: board.term,
        role: board.role,
        leader: board.leader,
        commit: board.commit,
        applied: board.appliedIndex,
        alarms: board.alarms
      }),
      signatureCacheHits: () => poolBoard.signatureCache.stats().hits,
      defenseAlarms: () => defenses.log.count,
      gossip: () => {
        const g = pool.gossip.stats()
        return { received: g.received, dropped: Object.values(g.dropped).reduce((a, b) => a + b, 0) }
      },
      pool: () => {
        const s = poolView()
        if (s === null) return null
        const open = [s.tree?.status, ...s.partitions.map((p) => p.status)].filter((x) => x === 'open').length
        return {
          state: s.state ?? 0,
          balances: s.balances,
          openPools: open,
          partitions: s.partitions.length,
          evidence: s.evidenceCount
        }
      }
    })
  }
}

/** The board of a new cluster: the configured voters (default: every member), the others learners. */
function initialConfiguration(config: NodeConfig, selfId: string): Configuration {
  if (config.members.length === 0) return { voters: [selfId], learners: [] }
  const voterNames = config.board.voters ?? config.members.map((m) => m.name)
  return {
    voters: config.members.filter((m) => voterNames.includes(m.name)).map((m) => m.peerId),
    learners: config.members.filter((m) => !voterNames.includes(m.name)).map((m) => m.peerId)
  }
}

async function openLocked(dir: DataDir): Promise<Database> {
  try {
    return await openDatabase(dir.databasePath, { create: false })
  } catch (err) {
    if (err instanceof DatabaseLockedError) {
      const pid = dir.readPid()
      throw new UserError(
        `another poolboard node is already running on ${dir.path}${pid === undefined ? '' : ` (pid ${pid})`}`
      )
    }
    throw err
  }
}

async function withTimeout(work: Promise<void> | undefined, what: string): Promise<void> {
  if (work === undefined) return
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`${what} did not stop within ${SHUTDOWN_STEP_TIMEOUT_MS} ms`))
    }, SHUTDOWN_STEP_TIMEOUT_MS)
  })
  try {
    await Promise.race([work, timeout])
  } finally {
    clearTimeout(timer)
  }
}
