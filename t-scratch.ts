import { readFileSync, writeFileSync, mkdirSync } from 'node:fs'
import { renderHtml, uptimeChart, seriesChart, headlineTable, detailTable, cellsCsv } from './daemon/lab/interactivity/report.js'
import type { StudyResult, Series } from './daemon/lab/interactivity/study.js'
const dir = process.argv[2]
const out = process.argv[3]
const sum = JSON.parse(readFileSync(`${dir}/summary.json`, 'utf8'))
const lines = readFileSync(`${dir}/series.csv`, 'utf8').trim().split('\n').slice(1)
const series: Series[] = []
for (const l of lines) {
  const [n, p, policy, t, open, frozen] = l.split(',')
  let s = series.find((x) => x.policy === policy)
  if (s === undefined) { s = { members: Number(n), uptime: Number(p), policy: policy as Series['policy'], points: [] }; series.push(s) }
  s.points.push({ t: Number(t), openPools: Number(open), frozenFundsShare: Number(frozen) })
}
const runs = readFileSync(`${dir}/runs.csv`, 'utf8').trim().split('\n').slice(1)
const r: StudyResult = { grid: sum.grid, cells: sum.cells, series, runs: runs as never, durationMs: sum.durationMs }
mkdirSync(`${out}/charts`, { recursive: true })
writeFileSync(`${out}/charts/off-chain.svg`, uptimeChart(r, 'offChainShare', { title: 'Payments completed off chain (within one day)', yLabel: 'share of payments', scale: 100, yMax: 100, unit: '%' }))
writeFileSync(`${out}/charts/delay-p99.svg`, uptimeChart(r, 'delayP99Min', { title: 'Delay until completed, 99th percentile', yLabel: 'minutes', scale: 1, unit: '' }))
writeFileSync(`${out}/charts/exit-vbytes.svg`, uptimeChart(r, 'exitVbytes', { title: 'On-chain footprint if everyone exited at the end (with fee children)', yLabel: 'virtual bytes', scale: 1, unit: ' vB', log: true }))
writeFileSync(`${out}/charts/open-pools.svg`, seriesChart(series))
writeFileSync(`${out}/report.html`, renderHtml(r, { command: sum.command, version: sum.version, createdAt: sum.createdAt }, { replay: process.argv[4] === undefined ? undefined : readFileSync(process.argv[4], 'utf8') }))
