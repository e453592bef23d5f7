import type { ApplyResult } from '../../board/pool-board.js'
import { ApiError, type ApiRequest, type Route } from '../api/server.js'
import type { Logger } from '../host/log.js'
import { formatHostPort, type HostPort } from '../host/config.js'
import { ActivityLog, type AppliedEntryRecord, type RoundRecord } from './rounds.js'
import { DashboardSite } from './site.js'
import type { NodeStatus } from '../api/types.js'
import type { BoardStatusView } from '../api/board-routes.js'
import type { PoolStatus } from '../pool/service.js'
import type { DefenseStatus } from '../defense/index.js'

/**
 * A node's own dashboard, served by its admin API under /dashboard. Its snapshot is made of the
 * admin API's own answers (GET /v1/status, /v1/board/status, /v1/pool/status, /v1/defense,
 * /v1/pool/evidence), read in-process through the same route handlers, so the page shows exactly
 * what `poolboard status`, `board status` and `pool status` print. A cluster's page reads the
 * same snapshot from every node over HTTP (GET /v1/dashboard/snapshot).
 */

export interface NodeSnapshot {
  node: NodeStatus
  board: BoardStatusView
  pool: PoolStatus | null
  defense: DefenseStatus | null
  evidence: { evidence: Array<Record<string, unknown>> } | null
  rounds: RoundRecord[]
  entries: AppliedEntryRecord[]
}

export const DASHBOARD_PREFIX = '/dashboard'

export class NodeDashboard {
  readonly site: DashboardSite
  readonly activity: ActivityLog
  private routes = new Map<string, Route>()
  private readonly apiAddress: () => HostPort | undefined

  constructor(options: { logger: Logger; apiAddress: () => HostPort | undefined; cookieSuffix: string }) {
    this.apiAddress = options.apiAddress
    this.activity = new ActivityLog(() => {
      this.site.poke()
    })
    this.site = new DashboardSite({
      kind: 'node',
      title: 'poolboard node',
      prefix: DASHBOARD_PREFIX,
      source: { snapshot: async () => await this.snapshot() },
      logger: options.logger,
      // Browsers share one host's cookies across ports: one name per node.
      cookieName: `poolboard_node_${options.cookieSuffix}`
    })
  }

  /** The node's routes with rounds recorded, plus the dashboard's own (link, snapshot). */
  withRoutes(routes: Route[]): Route[] {
    const wrapped = routes.map((r) => this.activity.wrap(r))
    const own: Route[] = [
      {
        method: 'POST',
        path: '/v1/dashboard/link',
        handler: async () => {
          const address = this.apiAddress()
          if (address === undefined) throw new ApiError(503, 'starting', 'the admin API is not listening yet')
          return { url: this.site.link(`http://${formatHostPort(address)}`) }
        }
      },
      { method: 'GET', path: '/v1/dashboard/snapshot', handler: async () => await this.snapshot() }
    ]
    const all = [...wrapped, ...own]
    this.routes = new Map(all.filter((r) => r.method === 'GET').map((r) => [r.path, r]))
    return all
  }

  onBoardResult(result: ApplyResult): void {
    this.activity.onBoardResult(result)
  }

  async snapshot(): Promise<NodeSnapshot> {
    const [node, board, pool, defense, evidence] = await Promise.all([
      this.read('/v1/status'),
      this.read('/v1/board/status'),
      this.read('/v1/pool/status'),
      this.read('/v1/defense'),
      this.read('/v1/pool/evidence')
    ])
    return {
      node: node as NodeStatus,
      board: board as BoardStatusView,
      pool: pool as PoolStatus | null,
      defense: defense as DefenseStatus | null,
      evidence: evidence as NodeSnapshot['evidence'],
      rounds: this.activity.rounds,
      entries: this.activity.entries.slice(-20)
    }
  }

  private async read(path: string): Promise<unknown> {
    const route = this.routes.get(path)
    if (route === undefined) return null
    const request: ApiRequest = { query: new URLSearchParams(), body: undefined }
    return await route.handler(request)
  }
}
