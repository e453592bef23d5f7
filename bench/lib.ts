import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Where benchmarks write their JSON results (git-ignored). */
export const RESULTS_DIR = fileURLToPath(new URL('../../bench/results/', import.meta.url))

/** The value below which `p` percent of `samples` fall (nearest rank). */
export function percentile (samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN
  const sorted = [...samples].sort((a, b) => a - b)
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

export function summarize (samples: readonly number[]): Summary {
  const mean = samples.reduce((a, b) => a + b, 0) / Math.max(1, samples.length)
  return {
    count: samples.length,
    min: Math.min(...samples),
    p50: percentile(samples, 50),
    p90: percentile(samples, 90),
    p99: percentile(samples, 99),
    max: Math.max(...samples),
    mean
  }
}

/** Writes `result` to bench/results/NAME-<time>.json and returns the path. */
export function writeResult (name: string, result: unknown): string {
  mkdirSync(RESULTS_DIR, { recursive: true })
  const file = join(RESULTS_DIR, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
  writeFileSync(file, JSON.stringify({ benchmark: name, at: new Date().toISOString(), node: process.version, ...result as object }, null, 2) + '\n')
  return file
}

/** Resident set size of a process in MiB, from /proc (Linux). */
export function rssMiB (pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN)
  return kb / 1024
}

export function fmt (n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-'
}
