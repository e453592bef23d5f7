import { existsSync } from 'node:fs'
import { AdminClient } from '../api/client.js'
import { LocalCluster } from '../cluster/index.js'
import { Progress } from '../host/table.js'
import type { Logger } from '../host/log.js'
import type { NodeSnapshot } from './node-page.js'
import { DashboardSite, type SiteAction } from './site.js'

/**
 * A local cluster's page (`poolboard dashboard --dir CLUSTER`): every node's snapshot side by
 * side, read from each node's admin API (GET /v1/dashboard/snapshot, the same snapshot a node's own
 * page shows), and the cluster commands stop, start, cut and heal as actions.
 */

export interface ClusterNodeView {
  index: number
  name: string
  peerId: string
  api: string
  pid: number | null
  running: boolean
  snapshot: NodeSnapshot | null
  /** Why there is no snapshot (stopped, not answering). */
  problem: string | null
}

export interface ClusterSnapshot {
  dir: string
  nodes: ClusterNodeView[]
}

const SNAPSHOT_TIMEOUT_MS = 1_500
const CLUSTER_POLL_MS = 300
const START_WAIT_MS = 30_000

export function clusterSite(dir: string, logger: Logger): DashboardSite {
  const cluster = new LocalCluster(dir, new Progress(false))
  cluster.read() // a missing cluster is an error now, not on the page
  const index = (body: Record<string, unknown>): number => {
    const i = body.node
    if (typeof i !== 'number' || !cluster.indexes().includes(i))
      throw new Error(`node: expected one of ${cluster.indexes().join(', ')}`)
    return i
  }
  const actions: Record<string, SiteAction> = {
    stop: { run: async (b) => ({ stopped: await cluster.signalNode(index(b), 'SIGTERM') }) },
    start: {
      run: async (b) => {
        const i = index(b)
        const pid = cluster.startNode(i)
        await cluster.waitForApi(i, Date.now() + START_WAIT_MS, pid)
        return { started: pid }
      }
    },
    cut: { run: async (b) => await running(cluster, index(b)).post('/v1/network/cut', {}) },
    heal: { run: async (b) => await running(cluster, index(b)).post('/v1/network/heal', {}) }
  }
  return new DashboardSite({
    kind: 'cluster',
    title: `poolboard cluster ${cluster.dir}`,
    prefix: '/cluster',
    pollMs: CLUSTER_POLL_MS,
    cookieName: 'poolboard_cluster_session',
    logger,
    actions,
    source: { snapshot: async () => await clusterSnapshot(cluster) }
  })
}

function running(cluster: LocalCluster, i: number): AdminClient {
  if (cluster.runningPid(i) === undefined) throw new Error(`node ${i} is not running`)
  return AdminClient.fromDataDir(cluster.dataDir(i))
}

export async function clusterSnapshot(cluster: LocalCluster): Promise<ClusterSnapshot> {
  const file = cluster.read()
  const nodes = await Promise.all(
    file.nodes.map(async (n): Promise<ClusterNodeView> => {
      const pid = cluster.runningPid(n.index) ?? null
      const view: ClusterNodeView = {
        index: n.index,
        name: n.name,
        peerId: n.peerId,
        api: n.api,
        pid,
        running: pid !== null,
        snapshot: null,
        problem: null
      }
      const dir = cluster.dataDir(n.index)
      if (pid === null) return { ...view, problem: 'stopped' }
      if (!existsSync(dir.cookieFile)) return { ...view, problem: 'starting' }
      try {
        view.snapshot = await AdminClient.fromDataDir(dir).get<NodeSnapshot>('/v1/dashboard/snapshot', {
          timeoutMs: SNAPSHOT_TIMEOUT_MS
        })
      } catch (err) {
        view.problem = `not answering: ${(err as Error).message}`
      }
      return view
    })
  )
  return { dir: cluster.dir, nodes }
}
