import { mixSeed } from '../campaign/plan.js'
import {
  DEFAULT_MODEL,
  makeSchedule,
  POLICIES,
  runModel,
  type ModelParams,
  type Policy,
  type RunResult
} from './model.js'

/**
 * The study's grid: every (members, uptime) pair, every policy on the same schedules, several
 * seeds; per-run measurements and their means with 95% confidence intervals over the seeds.
 */

export interface Grid {
  members: number[]
  uptimes: number[]
  policies: Policy[]
  seeds: number
  /** The first seed; run r of a pair uses mixSeed(seed, r). */
  seed: number
  model: Omit<ModelParams, 'members' | 'uptime' | 'policy' | 'seed'>
}

export const DEFAULT_GRID: Grid = {
  members: [4, 16, 64, 256, 1000],
  uptimes: [0.99, 0.95, 0.9, 0.7, 0.5],
  policies: [...POLICIES],
  seeds: 20,
  seed: 1,
  model: DEFAULT_MODEL
}

/** For CI: small pools, two uptimes, three seeds, two days. */
export const QUICK_GRID: Grid = {
  members: [4, 16],
  uptimes: [0.9, 0.5],
  policies: [...POLICIES],
  seeds: 3,
  seed: 1,
  model: { ...DEFAULT_MODEL, horizonMin: 2 * 24 * 60 }
}

/** What one run measured. Payments started in the last `patienceMin` are still in flight and not counted. */
export interface RunMetrics {
  members: number
  uptime: number
  policy: Policy
  seed: number
  payments: number
  /** Completed off chain within the patience. */
  offChainShare: number
  /** Minutes until completed (completed payments only; null if none). */
  delayP50Min: number | null
  delayP99Min: number | null
  /** Time averages over the samples, and the largest. */
  openPoolsMean: number
  openPoolsMax: number
  openPoolSizeMean: number
  frozenFundsShareMean: number
  kickedFundsShare: number
  exitTransactions: number
  exitVbytes: number
  exitOverTruc: number
  kickoutTransactions: number
  updates: number
  partitions: number
  merges: number
  kickouts: number
  maxStateNumber: number
}

export function measure(r: RunResult): RunMetrics {
  const p = r.params
  const counted = r.payments.filter((x) => x.t < p.horizonMin - p.patienceMin)
  const delays = counted
    .filter((x) => x.delayMin !== null)
    .map((x) => x.delayMin!)
    .sort((a, b) => a - b)
  const samples = r.samples
  const avg = (xs: number[]): number => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length)
  const ops = (kind: string): number => r.ops.filter((o) => o.kind === kind).length
  return {
    members: p.members,
    uptime: p.uptime,
    policy: p.policy,
    seed: p.seed,
    payments: counted.length,
    offChainShare: counted.length === 0 ? 0 : delays.length / counted.length,
    delayP50Min: quantile(delays, 0.5),
    delayP99Min: quantile(delays, 0.99),
    openPoolsMean: avg(samples.map((s) => s.openPools)),
    openPoolsMax: Math.max(0, ...samples.map((s) => s.openPools)),
    openPoolSizeMean: avg(samples.map((s) => avg(s.openSizes))),
    frozenFundsShareMean: avg(samples.map((s) => s.frozenFundsShare)),
    kickedFundsShare: samples.length === 0 ? 0 : samples[samples.length - 1].kickedFundsShare,
    exitTransactions: r.exit.transactions,
    exitVbytes: r.exit.vbytes,
    exitOverTruc: r.exit.overTrucLimit,
    kickoutTransactions: r.exit.kickoutTransactions,
    updates: ops('update'),
    partitions: ops('partition'),
    merges: ops('merge'),
    kickouts: ops('kickout'),
    maxStateNumber: r.maxStateNumber
  }
}

/** The q-quantile of sorted values (nearest rank); null when empty. */
export function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]
}

export interface Estimate {
  mean: number
  ci95: number
  n: number
}

/** Mean and the half-width of its 95% confidence interval (Student's t over the seeds). */
export function estimate(xs: ReadonlyArray<number | null>): Estimate | null {
  const v = xs.filter((x): x is number => x !== null)
  if (v.length === 0) return null
  const mean = v.reduce((a, b) => a + b, 0) / v.length
  if (v.length === 1) return { mean, ci95: 0, n: 1 }
  const sd = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1))
  return { mean, ci95: (tQuantile975(v.length - 1) * sd) / Math.sqrt(v.length), n: v.length }
}

const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11,
  2.101, 2.093, 2.086
]
/** Student's t 97.5% quantile for `df` degrees of freedom. */
export function tQuantile975(df: number): number {
  return df <= T975.length ? T975[df - 1] : 1.96 + 2.4 / df
}

export const METRICS = [
  'offChainShare',
  'delayP50Min',
  'delayP99Min',
  'openPoolsMean',
  'openPoolsMax',
  'openPoolSizeMean',
  'frozenFundsShareMean',
  'kickedFundsShare',
  'exitTransactions',
  'exitVbytes',
  'exitOverTruc',
  'kickoutTransactions',
  'updates',
  'partitions',
  'merges',
  'kickouts',
  'maxStateNumber'
] as const
export type MetricName = (typeof METRICS)[number]

export interface Cell {
  members: number
  uptime: number
  policy: Policy
  runs: number
  payments: number
  estimates: Record<MetricName, Estimate | null>
}

export interface Series {
  members: number
  uptime: number
  policy: Policy
  /** One run's open pools and frozen funds over time (the first seed). */
  points: Array<{ t: number; openPools: number; frozenFundsShare: number }>
}

export interface StudyResult {
  grid: Grid
  runs: RunMetrics[]
  cells: Cell[]
  series: Series[]
  durationMs: number
}

/** The (members, uptime) pair whose time series the report draws. */
export const SERIES_AT = { members: 64, uptime: 0.9 }

/** Runs the grid: for each pair and seed one schedule, every policy on it. */
export function runStudy(grid: Grid, onPair?: (done: number, total: number) => void): StudyResult {
  const started = performance.now()
  const runs: RunMetrics[] = []
  const series: Series[] = []
  const pairs = grid.members.flatMap((n) => grid.uptimes.map((p) => ({ n, p })))
  let done = 0
  for (const { n, p } of pairs) {
    for (let r = 0; r < grid.seeds; r++) {
      const seed = mixSeed(grid.seed, r)
      const schedule = makeSchedule({ ...grid.model, members: n, uptime: p, seed })
      for (const policy of grid.policies) {
        const result = runModel({ ...grid.model, members: n, uptime: p, policy, seed }, schedule)
        runs.push(measure(result))
        const at = grid.members.includes(SERIES_AT.members)
          ? SERIES_AT
          : { members: grid.members[0], uptime: grid.uptimes[0] }
        if (r === 0 && n === at.members && p === at.uptime) {
          series.push({
            members: n,
            uptime: p,
            policy,
            points: result.samples.map((s) => ({
              t: s.t,
              openPools: s.openPools,
              frozenFundsShare: s.frozenFundsShare
            }))
          })
        }
      }
    }
    onPair?.(++done, pairs.length)
  }
  return { grid, runs, cells: aggregate(runs), series, durationMs: performance.now() - started }
}

export function aggregate(runs: readonly RunMetrics[]): Cell[] {
  const groups = new Map<string, RunMetrics[]>()
  for (const r of runs) {
    const key = `${r.members}/${r.uptime}/${r.policy}`
    groups.set(key, [...(groups.get(key) ?? []), r])
  }
  return [...groups.values()].map((rs) => ({
    members: rs[0].members,
    uptime: rs[0].uptime,
    policy: rs[0].policy,
    runs: rs.length,
    payments: rs.reduce((a, r) => a + r.payments, 0),
    estimates: Object.fromEntries(METRICS.map((m) => [m, estimate(rs.map((r) => r[m]))])) as Record<
      MetricName,
      Estimate | null
    >
  }))
}
