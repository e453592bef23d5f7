import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Where benchmarks write their JSON results (git-ignored). */
const RESULTS_DIR = fileURLToPath(new URL('../../bench/results/', import.meta.url))

/** The value below which `p` percent of `samples` fall (nearest rank). */
export function percentile(samples: readonly number[], p: number): number {
  return percentileOfSorted(
    [...samples].sort((a, b) => a - b),
    p
  )
}

/** `percentile` of samples already sorted ascending. */
function percentileOfSorted(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank]
}

export interface Summary {
  count: number
  min: number
  p50: number
  p90: number
  p99: number
  max: number
  mean: number
}

/** Sorts one copy of `samples` and reads everything from it (no spreading: long runs exceed the argument limit). */
export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b)
  const mean = samples.reduce((a, b) => a + b, 0) / Math.max(1, samples.length)
  return {
    count: sorted.length,
    // as Math.min() / Math.max() of no samples
    min: sorted.length === 0 ? Infinity : sorted[0],
    p50: percentileOfSorted(sorted, 50),
    p90: percentileOfSorted(sorted, 90),
    p99: percentileOfSorted(sorted, 99),
    max: sorted.length === 0 ? -Infinity : sorted[sorted.length - 1],
    mean
  }
}

/** Writes `result` to bench/results/NAME-<time>.json and returns the path. */
export function writeResult(name: string, result: unknown): string {
  mkdirSync(RESULTS_DIR, { recursive: true })
  const file = join(RESULTS_DIR, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
  writeFileSync(
    file,
    JSON.stringify(
      { benchmark: name, at: new Date().toISOString(), node: process.version, ...(result as object) },
      null,
      2
    ) + '\n'
  )
  return file
}

/** utime + stime of a process, in seconds (Linux /proc). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // Fields 14 and 15 of stat(5), counted from the state field (3): clock ticks of 1/100 s.
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/** Resident set size of a process in MiB, from /proc (Linux). */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN)
  return kb / 1024
}

export function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-'
}

/** A bad benchmark option: printed as its message alone, with no stack. */
export class UsageError extends Error {}

/** The number given to `--NAME`, checked: finite, at least `min` (default 0), whole when `integer`. */
export function numberOption(name: string, text: string, opts: { min?: number; integer?: boolean } = {}): number {
  const min = opts.min ?? 0
  const n = Number(text)
  if (text.trim() === '' || !Number.isFinite(n) || n < min || (opts.integer === true && !Number.isSafeInteger(n))) {
    throw new UsageError(
      `--${name}: expected ${opts.integer === true ? 'a whole number' : 'a number'} of at least ${min}, got "${text}"`
    )
  }
  return n
}

/** `--NAME 1,16,64`: positive whole numbers separated by commas. */
export function countsOption(name: string, text: string): number[] {
  const counts = text.split(',').map(Number)
  if (counts.some((n) => !Number.isSafeInteger(n) || n < 1))
    throw new UsageError(`--${name}: expected positive whole numbers separated by commas, got "${text}"`)
  return counts
}

/** A goal a benchmark figure is held to: at most (latency) or at least (throughput, ratio) `limit`. */
export interface Budget {
  atMost?: number
  atLeast?: number
}

/** Whether `value` meets `budget`. */
export function meets(value: number, budget: Budget): boolean {
  return (
    (budget.atMost === undefined || value <= budget.atMost) && (budget.atLeast === undefined || value >= budget.atLeast)
  )
}

/** A figure with its goal beside it and whether it is met: "215.0 (goal ≤ 30: missed)". */
export function withBudget(value: number, budget: Budget, digits = 1): string {
  const goal = [
    budget.atMost === undefined ? null : `≤ ${fmt(budget.atMost, digits)}`,
    budget.atLeast === undefined ? null : `≥ ${fmt(budget.atLeast, digits)}`
  ]
    .filter((g) => g !== null)
    .join(', ')
  return `${fmt(value, digits)} (goal ${goal}: ${meets(value, budget) ? 'met' : 'MISSED'})`
}
