import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { AdminClient } from '../api/client.js'
import { LocalCluster } from '../cluster/index.js'
import { Progress } from '../host/table.js'
import type { DefenseAlarm, DefenseStatus } from '../defense/index.js'
import type { Logger } from '../host/log.js'
import { runDirName, type RunPlan } from '../lab/campaign/plan.js'
import { renderHtml, type Summary } from '../lab/campaign/report.js'
import type { RunRecord } from '../lab/campaign/runner.js'
import { DashboardSite } from './site.js'

/**
 * `poolboard lab coalition-drop --watch`: a page that follows the campaign as it runs. For the run
 * in progress it shows the cast, each node's board (applied index and the hash of that entry, so a
 * coalition's rewritten log stands out), the dropped statement, C's catch-up, each defense's
 * alarms as they are raised, and the verdict; then every finished run and, at the end, the
 * summary. The campaign calls it at each step; the nodes are read over their admin APIs.
 */

export interface LabNodeView {
  run: number
  name: string
  /** A, B, C, coalition, or honest. */
  roles: string[]
  running: boolean
  role: string | null
  leader: string | null
  applied: number | null
  commit: number | null
  /** Hash of the entry at the applied index. */
  hash: string | null
  alarms: DefenseAlarm[]
}

export interface LabRunView {
  run: number
  seed: number
  coalitionSize: number
  defense: string
  cast: { a: string; b: string; c: string; coalition: string[]; leader: string | null }
  steps: Array<{ step: string; atMs: number }>
  s1: { statementId: string; index: number } | null
  s2: RunRecord['s2']
  cCaughtUp: boolean | null
  verdict: { text: string; fooled: boolean; detectedBy: string[]; error: string | null } | null
}

export interface LabSnapshot {
  members: number
  totalRuns: number
  seed: number
  command: string
  current: LabRunView | null
  nodes: LabNodeView[]
  finished: LabRunView[]
  done: { outDir: string; summary: Summary } | null
}

const NODE_TIMEOUT_MS = 1_000
const MAX_FINISHED = 200

export class LabWatch {
  readonly site: DashboardSite
  private current: LabRunView | null = null
  private currentPlan: RunPlan | null = null
  private readonly finished: LabRunView[] = []
  private done: LabSnapshot['done'] = null
  private lastNodes: LabNodeView[] = []

  constructor(
    private readonly options: {
      members: number
      totalRuns: number
      seed: number
      command: string
      workDir: string
      logger: Logger
    }
  ) {
    this.site = new DashboardSite({
      kind: 'lab',
      title: 'poolboard lab: coalition-drop',
      prefix: '/lab',
      pollMs: 400,
      cookieName: 'poolboard_lab_session',
      logger: options.logger,
      source: { snapshot: async () => await this.snapshot() },
      documents: { report: () => (this.done === null ? null : renderHtml(this.done.summary)) }
    })
  }

  runStarted(plan: RunPlan): void {
    this.currentPlan = plan
    this.current = {
      run: plan.run,
      seed: plan.seed,
      coalitionSize: plan.coalitionSize,
      defense: plan.defense,
      cast: { a: plan.a, b: plan.b, c: plan.c, coalition: plan.coalition, leader: plan.leader },
      steps: [],
      s1: null,
      s2: null,
      cCaughtUp: null,
      verdict: null
    }
    this.site.poke()
  }

  step(step: string, record: RunRecord): void {
    if (this.current === null) return
    this.current.steps.push({ step, atMs: record.timeline[step] ?? 0 })
    this.current.s1 = record.s1
    this.current.s2 = record.s2
    if (step === 'C caught up') this.current.cCaughtUp = record.cCaughtUp
    this.site.poke()
  }

  runEnded(record: RunRecord, verdict: string): void {
    if (this.current === null) return
    this.current.s1 = record.s1
    this.current.s2 = record.s2
    this.current.cCaughtUp = record.cCaughtUp
    this.current.verdict = {
      text: verdict,
      fooled: record.fooled,
      detectedBy: [...new Set(record.detections.map((d) => `${d.node} (${d.defense})`))],
      error: record.error
    }
    this.finished.push(this.current)
    if (this.finished.length > MAX_FINISHED) this.finished.shift()
    this.site.poke()
  }

  campaignEnded(summary: Summary, outDir: string): void {
    this.done = { outDir, summary }
    this.site.poke()
  }

  async snapshot(): Promise<LabSnapshot> {
    // Between the end of a run and the next, the last run's nodes (now torn down) stay on show.
    if (this.currentPlan !== null && this.current?.verdict === null)
      this.lastNodes = await this.readNodes(this.currentPlan)
    return {
      members: this.options.members,
      totalRuns: this.options.totalRuns,
      seed: this.options.seed,
      command: this.options.command,
      current: this.current,
      nodes: this.lastNodes,
      finished: this.finished,
      done: this.done
    }
  }

  private async readNodes(plan: RunPlan): Promise<LabNodeView[]> {
    const dir = join(this.options.workDir, runDirName(plan.run))
    const cluster = new LocalCluster(dir, new Progress(false))
    if (!cluster.exists()) return []
    const names = Object.keys(plan.answerDelayMs).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
    return await Promise.all(
      names.map(async (name): Promise<LabNodeView> => {
        const roles = [
          name === plan.a ? 'A' : null,
          name === plan.b ? 'B' : null,
          name === plan.c ? 'C' : null,
          plan.coalition.includes(name) ? 'coalition' : null
        ].filter((r): r is string => r !== null)
        const view: LabNodeView = {
          run: plan.run,
          name,
          roles: roles.length === 0 ? ['honest'] : roles,
          running: false,
          role: null,
          leader: null,
          applied: null,
          commit: null,
          hash: null,
          alarms: []
        }
        const i = Number(name.replace(/^node/, ''))
        const data = cluster.dataDir(i)
        // A stopped node keeps what it showed last (its alarms above all), marked as not running.
        const before = this.lastNodes.find((n) => n.name === name && n.run === plan.run)
        if (cluster.runningPid(i) === undefined || !existsSync(data.cookieFile))
          return before === undefined ? view : { ...before, running: false }
        view.running = true
        try {
          const api = AdminClient.fromDataDir(data)
          const [board, defense] = await Promise.all([
            api.get<{ role: string; leader: { name: string | null } | null; applied: number; commit: number }>(
              '/v1/board/status',
              { timeoutMs: NODE_TIMEOUT_MS }
            ),
            api.get<DefenseStatus>('/v1/defense', { timeoutMs: NODE_TIMEOUT_MS })
          ])
          view.role = board.role
          view.leader = board.leader?.name ?? null
          view.applied = board.applied
          view.commit = board.commit
          view.alarms = defense.alarms
          if (board.applied > 0) {
            const log = await api.get<{ entries: Array<{ hash: string }> }>(
              `/v1/board/log?from=${board.applied}&limit=1`,
              { timeoutMs: NODE_TIMEOUT_MS }
            )
            view.hash = log.entries[0]?.hash ?? null
          }
        } catch {
          // starting or stopping: what it showed last
          if (before !== undefined) return { ...before, running: true }
        }
        return view
      })
    )
  }
}
