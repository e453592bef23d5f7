import type { Policy } from './model.js'
import {
  METRICS,
  type Cell,
  type Estimate,
  type MetricName,
  type RunMetrics,
  type Series,
  type StudyResult
} from './study.js'

/**
 * The study's outputs, pure: text and Markdown tables, CSV, and charts as self-contained SVG
 * inside an HTML page (labelled axes, a legend that fits, 95% error bars, the command and version).
 */

export interface ReportMeta {
  command: string
  version: string
  createdAt: string
}

const POLICY_LABEL: Record<Policy, string> = {
  unanimity: 'unanimity only',
  kickout: 'unanimity + kick-out',
  partitions: 'partitions + merge',
  'partitions-kickout': 'partitions + merge + kick-out'
}
/** Dashes tell policies apart where their lines coincide (a dashed line over a solid one). */
const POLICY_DASH: Record<Policy, string> = {
  unanimity: '',
  kickout: '7 4',
  partitions: '',
  'partitions-kickout': '3 3'
}
const POLICY_COLOR: Record<Policy, string> = {
  unanimity: '#7f7f7f',
  kickout: '#d62728',
  partitions: '#1f77b4',
  'partitions-kickout': '#2ca02c'
}

function cellOf(r: StudyResult, n: number, p: number, policy: Policy): Cell | undefined {
  return r.cells.find((c) => c.members === n && c.uptime === p && c.policy === policy)
}

function fmt(e: Estimate | null | undefined, kind: 'pct' | 'num' | 'min'): string {
  if (e == null) return '-'
  if (kind === 'pct') return `${(e.mean * 100).toFixed(1)} ± ${(e.ci95 * 100).toFixed(1)}%`
  if (kind === 'min')
    return `${e.mean < 10 ? e.mean.toFixed(1) : Math.round(e.mean)} ± ${e.ci95 < 10 ? e.ci95.toFixed(1) : Math.round(e.ci95)}`
  return `${e.mean < 10 ? e.mean.toFixed(2) : Math.round(e.mean).toLocaleString('en')} ± ${e.ci95 < 10 ? e.ci95.toFixed(2) : Math.round(e.ci95).toLocaleString('en')}`
}

/** The headline: the share of payments completed off chain, by pool size and uptime, per policy. */
export function headlineTable(r: StudyResult): string {
  const head = ['n', 'p', ...r.grid.policies.map((x) => POLICY_LABEL[x])]
  const rows = r.grid.members.flatMap((n) =>
    r.grid.uptimes.map((p) => [
      String(n),
      String(p),
      ...r.grid.policies.map((x) => fmt(cellOf(r, n, p, x)?.estimates.offChainShare, 'pct'))
    ])
  )
  return markdown(head, rows)
}

/** Per policy: delays, sub-pools, frozen funds, exit footprint. */
export function detailTable(r: StudyResult, policy: Policy): string {
  const head = [
    'n',
    'p',
    'off chain',
    'delay p50 (min)',
    'delay p99 (min)',
    'open pools (mean)',
    'open pools (max)',
    'open pool size',
    'funds frozen',
    'exit: txs',
    'exit: kvB',
    'txs > TRUC limit',
    'kick-outs',
    'merges'
  ]
  const rows = r.grid.members.flatMap((n) =>
    r.grid.uptimes.map((p) => {
      const e = cellOf(r, n, p, policy)?.estimates
      const kvb =
        e?.exitVbytes == null
          ? null
          : { ...e.exitVbytes, mean: e.exitVbytes.mean / 1000, ci95: e.exitVbytes.ci95 / 1000 }
      return [
        String(n),
        String(p),
        fmt(e?.offChainShare, 'pct'),
        fmt(e?.delayP50Min, 'min'),
        fmt(e?.delayP99Min, 'min'),
        fmt(e?.openPoolsMean, 'num'),
        fmt(e?.openPoolsMax, 'num'),
        fmt(e?.openPoolSizeMean, 'num'),
        fmt(e?.frozenFundsShareMean, 'pct'),
        fmt(e?.exitTransactions, 'num'),
        fmt(kvb, 'num'),
        fmt(e?.exitOverTruc, 'num'),
        fmt(e?.kickouts, 'num'),
        fmt(e?.merges, 'num')
      ]
    })
  )
  return markdown(head, rows)
}

function markdown(head: string[], rows: string[][]): string {
  return (
    [
      `| ${head.join(' | ')} |`,
      `| ${head.map((_, i) => (i < 2 ? '---:' : '---:')).join(' | ')} |`,
      ...rows.map((r) => `| ${r.join(' | ')} |`)
    ].join('\n') + '\n'
  )
}

// ---- CSV ----

export function cellsCsv(r: StudyResult): string {
  const head = [
    'members',
    'uptime',
    'policy',
    'runs',
    'payments',
    ...METRICS.flatMap((m) => [`${m}_mean`, `${m}_ci95`])
  ]
  const rows = r.cells.map((c) => [
    c.members,
    c.uptime,
    c.policy,
    c.runs,
    c.payments,
    ...METRICS.flatMap((m) => {
      const e = c.estimates[m]
      return e === null ? ['', ''] : [round(e.mean), round(e.ci95)]
    })
  ])
  return [head, ...rows].map((x) => x.join(',')).join('\n') + '\n'
}

export function runsCsv(runs: readonly RunMetrics[]): string {
  if (runs.length === 0) return ''
  const head = Object.keys(runs[0]) as Array<keyof RunMetrics>
  return (
    [
      head.join(','),
      ...runs.map((r) =>
        head
          .map((k) => (r[k] === null ? '' : typeof r[k] === 'number' ? round(r[k] as number) : String(r[k])))
          .join(',')
      )
    ].join('\n') + '\n'
  )
}

export function seriesCsv(series: readonly Series[]): string {
  const lines = ['members,uptime,policy,t_min,open_pools,frozen_funds_share']
  for (const s of series)
    for (const x of s.points)
      lines.push([s.members, s.uptime, s.policy, x.t, x.openPools, round(x.frozenFundsShare)].join(','))
  return lines.join('\n') + '\n'
}

function round(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(6).replace(/0+$/, '').replace(/\.$/, '')
}

// ---- charts ----

const FONT = 'font-family="Helvetica, Arial, sans-serif" font-size="12"'
/** Grid lines at fifths of the axis: niceMax gives 1, 2, 2.5 or 5 times a power of ten, so these are round. */
const TICKS = [0, 0.2, 0.4, 0.6, 0.8, 1]

/** Small multiples, one panel per pool size: `metric` against uptime, one line per policy with 95% error bars. */
export function uptimeChart(
  r: StudyResult,
  metric: MetricName,
  opts: { title: string; yLabel: string; scale: number; yMax?: number; unit: string; log?: boolean }
): string {
  const panelW = 190
  const panelH = 160
  const left = 78
  const gapX = 28
  const top = 84
  const ns = r.grid.members
  const ps = [...r.grid.uptimes].sort((a, b) => a - b)
  const width = Math.max(720, left + ns.length * (panelW + gapX) + 10)
  const height = top + panelH + 70
  const values = r.cells
    .map((c) => c.estimates[metric])
    .filter((e): e is Estimate => e !== null)
    .map((e) => (e.mean + e.ci95) * opts.scale)
  const yMax =
    opts.log === true
      ? 10 ** Math.ceil(Math.log10(Math.max(10, ...values)))
      : (opts.yMax ?? niceMax(Math.max(1e-9, ...values)))
  // A log axis spans five decades down from its top (values below sit on the floor).
  const yMin = yMax / 1e5
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT}>`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`
  ]
  out.push(`<text x="${left}" y="20" font-size="15" font-weight="bold">${esc(opts.title)}</text>`)
  out.push(...legend(r.grid.policies, left, 38, width - left))
  // Uptimes are evenly spaced (0.9, 0.95 and 0.99 would crowd on a linear axis).
  const xOf = (p: number, x0: number): number =>
    x0 + 12 + (ps.length === 1 ? 0.5 : ps.indexOf(p) / (ps.length - 1)) * (panelW - 24)
  const yOf = (v: number): number =>
    opts.log === true
      ? top + panelH - Math.min(1, Math.max(0, Math.log10(Math.max(v, yMin) / yMin) / 5)) * panelH
      : top + panelH - Math.min(1, v / yMax) * panelH
  const ticks = TICKS
  const tickValue = (t: number): number => (opts.log === true ? yMin * 10 ** (5 * t) : t * yMax)
  ns.forEach((n, i) => {
    const x0 = left + i * (panelW + gapX)
    out.push(`<text x="${x0 + panelW / 2}" y="${top - 10}" text-anchor="middle" font-weight="bold">n = ${n}</text>`)
    for (const t of ticks) {
      const y = top + panelH - t * panelH
      out.push(`<line x1="${x0}" y1="${y}" x2="${x0 + panelW}" y2="${y}" stroke="#e4e4e4"/>`)
      if (i === 0)
        out.push(`<text x="${x0 - 6}" y="${y + 4}" text-anchor="end">${esc(tick(tickValue(t), opts.unit))}</text>`)
    }
    for (const p of ps) out.push(`<text x="${xOf(p, x0)}" y="${top + panelH + 16}" text-anchor="middle">${p}</text>`)
    out.push(`<line x1="${x0}" y1="${top + panelH}" x2="${x0 + panelW}" y2="${top + panelH}" stroke="#444"/>`)
    r.grid.policies.forEach((policy, k) => {
      const pts = ps
        .map((p) => ({ p, e: cellOf(r, n, p, policy)?.estimates[metric] ?? null }))
        .filter((x): x is { p: number; e: Estimate } => x.e !== null)
      const dx = (k - (r.grid.policies.length - 1) / 2) * 2.5 // keep error bars of equal values apart
      const color = POLICY_COLOR[policy]
      if (pts.length > 1)
        out.push(
          `<polyline fill="none" stroke="${color}" stroke-width="1.8"${dash(policy)} points="${pts.map((x) => `${xOf(x.p, x0) + dx},${yOf(x.e.mean * opts.scale)}`).join(' ')}"/>`
        )
      for (const x of pts) {
        const cx = xOf(x.p, x0) + dx
        const lo = yOf(Math.max(0, (x.e.mean - x.e.ci95) * opts.scale))
        const hi = yOf((x.e.mean + x.e.ci95) * opts.scale)
        out.push(
          `<line x1="${cx}" y1="${lo}" x2="${cx}" y2="${hi}" stroke="${color}"/><line x1="${cx - 3}" y1="${lo}" x2="${cx + 3}" y2="${lo}" stroke="${color}"/><line x1="${cx - 3}" y1="${hi}" x2="${cx + 3}" y2="${hi}" stroke="${color}"/>`
        )
        out.push(
          `<circle cx="${cx}" cy="${yOf(x.e.mean * opts.scale)}" r="2.6" fill="${color}"><title>${esc(`n ${n}, p ${x.p}, ${POLICY_LABEL[policy]}: ${tick(x.e.mean * opts.scale, opts.unit)} ± ${tick(x.e.ci95 * opts.scale, opts.unit)} (${x.e.n} runs)`)}</title></circle>`
        )
      }
    })
  })
  out.push(
    `<text x="${left + (ns.length * (panelW + gapX) - gapX) / 2}" y="${top + panelH + 40}" text-anchor="middle">mean uptime p (share of the time a member is online)</text>`
  )
  out.push(
    `<text transform="translate(14 ${top + panelH / 2}) rotate(-90)" text-anchor="middle">${esc(opts.yLabel)}${opts.log === true ? ' (log scale)' : ''}</text>`
  )
  out.push(
    `<text x="${left}" y="${height - 8}" fill="#666" font-size="11">points: mean over ${r.grid.seeds} seeds; bars: 95% confidence interval (Student's t)</text>`
  )
  out.push('</svg>')
  return out.join('\n') + '\n'
}

/** Open sub-pools over one run's time, per policy. */
export function seriesChart(series: readonly Series[]): string {
  if (series.length === 0) return ''
  const left = 64
  const top = 72
  const plotW = 640
  const plotH = 220
  const width = left + plotW + 30
  const height = top + plotH + 64
  const tMax = Math.max(...series.flatMap((s) => s.points.map((x) => x.t)))
  const yMax = niceMax(Math.max(1, ...series.flatMap((s) => s.points.map((x) => x.openPools))))
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT}>`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`
  ]
  out.push(
    `<text x="${left}" y="20" font-size="15" font-weight="bold">${esc(`Open (sub-)pools over time, n = ${series[0].members}, p = ${series[0].uptime} (one seed)`)}</text>`
  )
  out.push(
    ...legend(
      series.map((s) => s.policy),
      left,
      38,
      plotW
    )
  )
  const xOf = (t: number): number => left + (t / tMax) * plotW
  const yOf = (v: number): number => top + plotH - (v / yMax) * plotH
  for (const f of TICKS) {
    const y = top + plotH - f * plotH
    out.push(
      `<line x1="${left}" y1="${y}" x2="${left + plotW}" y2="${y}" stroke="#e4e4e4"/><text x="${left - 6}" y="${y + 4}" text-anchor="end">${Math.round(f * yMax)}</text>`
    )
  }
  for (let d = 0; d * 1440 <= tMax; d++)
    out.push(`<text x="${xOf(d * 1440)}" y="${top + plotH + 16}" text-anchor="middle">${d}</text>`)
  out.push(`<line x1="${left}" y1="${top + plotH}" x2="${left + plotW}" y2="${top + plotH}" stroke="#444"/>`)
  for (const s of series)
    out.push(
      `<polyline fill="none" stroke="${POLICY_COLOR[s.policy]}" stroke-width="1.8"${dash(s.policy)} points="${s.points.map((x) => `${xOf(x.t).toFixed(1)},${yOf(x.openPools).toFixed(1)}`).join(' ')}"/>`
    )
  out.push(`<text x="${left + plotW / 2}" y="${top + plotH + 40}" text-anchor="middle">time (days)</text>`)
  out.push(
    `<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">open pools holding funds</text>`
  )
  out.push('</svg>')
  return out.join('\n') + '\n'
}

function legend(policies: readonly Policy[], x: number, y: number, maxW: number): string[] {
  const out: string[] = []
  let lx = x
  let ly = y
  for (const p of policies) {
    const w = 28 + POLICY_LABEL[p].length * 6.6
    if (lx + w > x + maxW) {
      lx = x
      ly += 16
    }
    out.push(
      `<line x1="${lx}" y1="${ly}" x2="${lx + 18}" y2="${ly}" stroke="${POLICY_COLOR[p]}" stroke-width="2.5"${dash(p)}/><text x="${lx + 23}" y="${ly + 4}">${esc(POLICY_LABEL[p])}</text>`
    )
    lx += w
  }
  return out
}

function dash(p: Policy): string {
  return POLICY_DASH[p] === '' ? '' : ` stroke-dasharray="${POLICY_DASH[p]}"`
}

function niceMax(v: number): number {
  const e = 10 ** Math.floor(Math.log10(v))
  for (const m of [1, 2, 2.5, 5, 10]) if (m * e >= v) return m * e
  return 10 * e
}

function tick(v: number, unit: string): string {
  if (unit === '%') return `${Math.round(v * 10) / 10}%`
  if (unit === ' vB')
    return v >= 1e6
      ? `${+(v / 1e6).toPrecision(3)} MvB`
      : v >= 1e3
        ? `${+(v / 1e3).toPrecision(3)} kvB`
        : `${+v.toPrecision(3)} vB`
  if (v >= 10_000) return `${Math.round(v / 1000)}k${unit}`
  return `${Math.round(v * 10) / 10}${unit}`
}

export function renderHtml(r: StudyResult, meta: ReportMeta, extra: { replay?: string } = {}): string {
  const charts = [
    uptimeChart(r, 'offChainShare', {
      title: 'Payments completed off chain (within one day)',
      yLabel: 'share of payments',
      scale: 100,
      yMax: 100,
      unit: '%'
    }),
    uptimeChart(r, 'delayP50Min', {
      title: 'Delay until completed, median (completed payments)',
      yLabel: 'minutes',
      scale: 1,
      unit: ''
    }),
    uptimeChart(r, 'delayP99Min', {
      title: 'Delay until completed, 99th percentile',
      yLabel: 'minutes',
      scale: 1,
      unit: ''
    }),
    uptimeChart(r, 'openPoolsMean', {
      title: 'Open (sub-)pools holding funds, time average',
      yLabel: 'pools',
      scale: 1,
      unit: ''
    }),
    uptimeChart(r, 'frozenFundsShareMean', {
      title: 'Funds in frozen pools, time average',
      yLabel: 'share of the funds',
      scale: 100,
      yMax: 100,
      unit: '%'
    }),
    uptimeChart(r, 'exitVbytes', {
      title: 'On-chain footprint if everyone exited at the end (with fee children)',
      yLabel: 'virtual bytes',
      scale: 1,
      unit: ' vB',
      log: true
    }),
    seriesChart(r.series)
  ]
  const tables = r.grid.policies
    .map((p) => `<h3>${esc(POLICY_LABEL[p])}</h3>\n${mdToHtml(detailTable(r, p))}`)
    .join('\n')
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>poolboard: how much do partitions help, and what do they cost?</title>
<style>
body { font-family: Helvetica, Arial, sans-serif; margin: 2em; color: #222; max-width: 80em; }
table { border-collapse: collapse; font-size: 12px; margin-bottom: 1.5em; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 7px; text-align: right; }
code { background: #f4f4f4; padding: 1px 4px; }
svg { display: block; margin: 1em 0 2em 0; }
</style>
</head>
<body>
<h1>How much do partitions help, and what do they cost?</h1>
<p>poolboard ${esc(meta.version)}, ${esc(meta.createdAt)}, ${r.runs.length} runs in ${(r.durationMs / 1000).toFixed(1)} s.<br>
<code>${esc(meta.command)}</code></p>
<p>Model: ${esc(describeModel(r))}. See docs/interactivity.md for what it leaves out.</p>
<h2>Share of payments completed off chain (mean ± 95% CI)</h2>
${mdToHtml(headlineTable(r))}
${charts.join('\n')}
${extra.replay === undefined ? '' : `<h2>Replay on a real cluster</h2>\n<pre>${esc(extra.replay)}</pre>`}
<h2>Details per policy</h2>
${tables}
</body>
</html>
`
}

export function describeModel(r: StudyResult): string {
  const m = r.grid.model
  return (
    `every member online in sessions with exponential on and off times (mean on p·${m.cycleMin / 60} h, off (1−p)·${m.cycleMin / 60} h), ` +
    `${m.paymentsPerDay} payments per member per day to uniformly random members (Poisson), given up after ${m.patienceMin / 60} h; ` +
    `${m.horizonMin / 1440} days, a block every ${m.blockMin} min, kick-out after X = ${m.kickoutDelayBlocks} blocks offline; ${r.grid.seeds} seeds per (n, p), the same schedules for every policy`
  )
}

function mdToHtml(md: string): string {
  const lines = md
    .trim()
    .split('\n')
    .filter((_, i) => i !== 1)
  const cells = (l: string): string[] =>
    l
      .slice(1, -1)
      .split('|')
      .map((x) => x.trim())
  return `<table>\n<tr>${cells(lines[0])
    .map((c) => `<th>${esc(c)}</th>`)
    .join('')}</tr>\n${lines
    .slice(1)
    .map(
      (l) =>
        `<tr>${cells(l)
          .map((c) => `<td>${esc(c)}</td>`)
          .join('')}</tr>`
    )
    .join('\n')}\n</table>`
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}
