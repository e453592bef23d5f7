import { mkdirSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { jsonReplacer } from '../../api/server.js'
import { LocalCluster } from '../../cluster/index.js'
import { Progress } from '../../host/table.js'
import { planRuns, runDirName, type LabPlanOptions, type RunPlan } from './plan.js'
import { renderCsv, renderHtml, renderSummaryTable, renderSvg, summarize, type Summary } from './report.js'
import { cpus, platform, release, totalmem } from 'node:os'
import { VERSION } from '../../host/version.js'
import { playRun, type RunRecord } from './runner.js'

/**
 * `poolboard lab coalition-drop`: plays every planned run one after the other (each spins up a
 * whole cluster; the machine is shared), shows progress with an estimate of the time left, and
 * writes DIR/runs/*.json (one record per run), DIR/summary.json, DIR/chart.svg and DIR/report.html.
 */

export interface CampaignOptions extends LabPlanOptions {
  outDir: string
  /** Keep every run's cluster directory (logs), not only those of failed runs. */
  keep: boolean
  command: string
  /** The `--watch` page, told of every step (daemon/dashboard/lab-watch.ts). */
  watch?: CampaignWatcher
}

/** Who follows the campaign as it runs. */
export interface CampaignWatcher {
  runStarted: (plan: RunPlan) => void
  step: (step: string, record: RunRecord) => void
  runEnded: (record: RunRecord, verdict: string) => void
  campaignEnded: (summary: Summary, outDir: string) => void
}

/** A first guess of one run's wall time, before any run has been measured. */
export const ESTIMATED_RUN_S = 12

export interface CampaignResult {
  summary: Summary
  records: RunRecord[]
  outDir: string
  files: string[]
}

export async function runCampaign(
  options: CampaignOptions,
  progress: Progress,
  say: (line: string) => void
): Promise<CampaignResult> {
  const outDir = resolve(options.outDir)
  const runsDir = join(outDir, 'runs')
  const workDir = clustersDir(outDir)
  mkdirSync(runsDir, { recursive: true })
  mkdirSync(workDir, { recursive: true })
  const plans = planRuns(options)
  say(
    `${plans.length} runs of ${options.members} node processes each (seed ${options.seed}); about ${formatDuration(plans.length * ESTIMATED_RUN_S * 1000)} in all`
  )
  const records: RunRecord[] = []
  const startMs = Date.now()
  let current: RunPlan | null = null
  // Ctrl-C: no node process of the run in progress may outlive the command.
  const onSignal = (): void => {
    if (current !== null) new LocalCluster(join(workDir, runDirName(current.run)), new Progress(false)).killAllNow()
    progress.done('interrupted: the run in progress was torn down')
    process.exit(130)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  const files: string[] = []
  try {
    for (const plan of plans) {
      current = plan
      const done = records.length
      const avgMs = done === 0 ? ESTIMATED_RUN_S * 1000 : (Date.now() - startMs) / done
      const head = `run ${done + 1} of ${plans.length}: coalition ${plan.coalitionSize}, defenses ${plan.defense}, seed ${plan.seed}`
      const eta = `about ${formatDuration(avgMs * (plans.length - done))} left`
      progress.update(`${head} (${eta})`)
      options.watch?.runStarted(plan)
      const record = await playRun(plan, workDir, {
        keep: options.keep,
        onStep: (step, partial) => {
          progress.update(`${head}: ${step} (${eta})`)
          options.watch?.step(step, partial)
        }
      })
      records.push(record)
      const file = join(runsDir, `${runDirName(plan.run)}-k${plan.coalitionSize}-${plan.defense}.json`)
      writeFileSync(file, JSON.stringify(record, jsonReplacer, 2) + '\n')
      files.push(file)
      const verdict =
        record.error !== null
          ? `failed: ${record.error}`
          : `${record.fooled ? 'C FOOLED' : 'C not fooled'}${record.detections.length > 0 ? `, detected by ${[...new Set(record.detections.map((d) => `${d.node} (${d.defense})`))].join(', ')}` : ', not detected'}`
      progress.done(`${head}: ${verdict} [${(record.durationMs / 1000).toFixed(1)} s]`)
      options.watch?.runEnded(record, verdict)
    }
  } finally {
    current = null
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
  const summary = summarize(records, {
    command: options.command,
    durationMs: Date.now() - startMs,
    version: VERSION,
    machine: machineDescription()
  })
  const out = {
    'summary.json': JSON.stringify(summary, jsonReplacer, 2) + '\n',
    'summary.csv': renderCsv(summary),
    'chart.svg': renderSvg(summary),
    'report.html': renderHtml(summary),
    'table.txt': renderSummaryTable(summary) + '\n'
  }
  for (const [name, text] of Object.entries(out)) {
    writeFileSync(join(outDir, name), text)
    files.push(join(outDir, name))
  }
  options.watch?.campaignEnded(summary, outDir)
  // Only failed runs (or --keep) leave a cluster directory behind.
  if (readdirSync(workDir).length === 0) rmdirSync(workDir)
  return { summary, records, outDir, files }
}

/** The machine, for a report: "4 x Intel(R) Xeon(R) ..., 16 GiB, linux 6.1.0, node v20.20.0". */
export function machineDescription(): string {
  const cores = cpus()
  return `${cores.length} x ${cores[0]?.model.trim() ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, ${platform()} ${release()}, node ${process.version}`
}

/** Where the runs' cluster directories go under the campaign's output directory. */
export function clustersDir(outDir: string): string {
  return join(resolve(outDir), 'clusters')
}

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000))
  if (s < 90) return `${s} s`
  const m = Math.round(s / 60)
  return m < 90 ? `${m} min` : `${(m / 60).toFixed(1)} h`
}
