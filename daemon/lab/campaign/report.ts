import type { DefenseName } from '../../defense/index.js'
import { renderTable } from '../../host/table.js'
import { DEFENSE_SETS, type DefenseSet } from './plan.js'
import type { RunRecord } from './runner.js'

/**
 * The lab's summary over many runs, pure: rates per coalition size and defense set, a text table,
 * and a chart as a self-contained SVG and HTML page (no external assets, no scripts).
 */

export interface Cell {
  coalitionSize: number
  defense: DefenseSet
  /** Runs that completed (a run that failed to set up is counted in `errors` only). */
  runs: number
  errors: number
  fooled: number
  fooledRate: number | null
  /** Runs in which an honest node detected the attack (or a defense made it refuse). */
  detected: number
  detectionRate: number | null
  /** Runs in which each defense detected it. */
  byDefense: Partial<Record<DefenseName, number>>
  /** Runs in which the attack was detected before A offered S2. */
  detectedBeforeOffer: number
  /** Median over runs of the first detection, in ms after the offer (negative: before). */
  firstDetectionMedianMs: number | null
  /** What C answered: signed, or its refusal code. */
  cAnswers: Record<string, number>
  /** Runs in which S2 ended up accepted on C's board. */
  acceptedByC: number
}

export interface Summary {
  createdAt: string
  command: string
  /** Members in every run (node processes). */
  members: number
  /** The poolboard version and the machine the runs were played on, for people comparing reports. */
  version: string
  machine: string
  totalRuns: number
  errors: number
  durationMs: number
  cells: Cell[]
}

const DEFENSE_ORDER: readonly DefenseName[] = ['quorum-read', 'hash-chain', 'gossip-check', 'evidence']

export function summarize(
  records: readonly RunRecord[],
  meta: { command: string; durationMs: number; createdAt?: string; version?: string; machine?: string }
): Summary {
  const groups = new Map<string, RunRecord[]>()
  for (const r of records) {
    const key = `${r.coalition.size}/${r.defense}`
    groups.set(key, [...(groups.get(key) ?? []), r])
  }
  const cells: Cell[] = []
  for (const rs of groups.values()) {
    const ok = rs.filter((r) => r.error === null)
    const detectedRuns = ok.filter((r) => r.detections.length > 0)
    const byDefense: Partial<Record<DefenseName, number>> = {}
    for (const d of DEFENSE_ORDER) {
      const count = ok.filter((r) => r.detections.some((x) => x.defense === d)).length
      if (count > 0) byDefense[d] = count
    }
    const firsts = detectedRuns.map((r) => r.detections[0].atMs).sort((a, b) => a - b)
    const cAnswers: Record<string, number> = {}
    for (const r of ok) {
      const a = r.fooled ? 'signed' : (r.cRefusal?.code ?? 'no answer')
      cAnswers[a] = (cAnswers[a] ?? 0) + 1
    }
    cells.push({
      coalitionSize: rs[0].coalition.size,
      defense: rs[0].defense,
      runs: ok.length,
      errors: rs.length - ok.length,
      fooled: ok.filter((r) => r.fooled).length,
      fooledRate: ok.length === 0 ? null : ok.filter((r) => r.fooled).length / ok.length,
      detected: detectedRuns.length,
      detectionRate: ok.length === 0 ? null : detectedRuns.length / ok.length,
      byDefense,
      detectedBeforeOffer: detectedRuns.filter((r) => r.detections[0].atMs < 0).length,
      firstDetectionMedianMs: firsts.length === 0 ? null : firsts[Math.floor((firsts.length - 1) / 2)],
      cAnswers,
      acceptedByC: ok.filter((r) => r.acceptedByC).length
    })
  }
  cells.sort(
    (a, b) => a.coalitionSize - b.coalitionSize || DEFENSE_SETS.indexOf(a.defense) - DEFENSE_SETS.indexOf(b.defense)
  )
  return {
    createdAt: meta.createdAt ?? new Date().toISOString(),
    command: meta.command,
    members: records[0]?.members ?? 0,
    version: meta.version ?? 'unknown',
    machine: meta.machine ?? 'unknown',
    totalRuns: records.length,
    errors: records.filter((r) => r.error !== null).length,
    durationMs: meta.durationMs,
    cells
  }
}

const pct = (x: number | null): string => (x === null ? '-' : `${Math.round(x * 100)}%`)

function ratio(count: number, runs: number, rate: number | null): string {
  return runs === 0 ? '-' : `${count}/${runs} ${pct(rate)}`
}

function byText(c: Cell): string {
  const parts = DEFENSE_ORDER.filter((d) => c.byDefense[d] !== undefined).map((d) => `${d} ${c.byDefense[d]}`)
  return parts.length === 0 ? '-' : parts.join(', ')
}

function whenText(c: Cell): string {
  if (c.firstDetectionMedianMs === null) return '-'
  const ms = c.firstDetectionMedianMs
  return ms < 0 ? `${(-ms / 1000).toFixed(1)} s before` : `${(ms / 1000).toFixed(1)} s after`
}

function answersText(c: Cell): string {
  return (
    Object.entries(c.cAnswers)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v}`)
      .join(', ') || '-'
  )
}

export const TABLE_HEADERS = [
  'coalition',
  'defenses',
  'runs',
  'C fooled',
  'detected',
  'by',
  'first detection (median)',
  'C answered'
] as const

export function tableRows(s: Summary): string[][] {
  return s.cells.map((c) => [
    String(c.coalitionSize),
    c.defense,
    String(c.runs + c.errors) + (c.errors > 0 ? ` (${c.errors} failed)` : ''),
    ratio(c.fooled, c.runs, c.fooledRate),
    ratio(c.detected, c.runs, c.detectionRate),
    byText(c),
    whenText(c),
    answersText(c)
  ])
}

export function renderSummaryTable(s: Summary): string {
  return renderTable([...TABLE_HEADERS], tableRows(s), { alignRight: [0, 2] })
}

// ---- chart ----

/**
 * Okabe-Ito colours (told apart with the common colour blindnesses). No defense is grey; the
 * safest setting, all, is green; no red, which reads as danger.
 */
export const COLORS: Record<DefenseSet, string> = {
  none: '#8c8c8c',
  'quorum-read': '#e69f00',
  'hash-chain': '#56b4e9',
  'gossip-check': '#cc79a7',
  evidence: '#0072b2',
  all: '#009e73'
}

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** The 95% Wilson score interval of `k` successes in `n` runs: sound for few runs and rates of 0 or 1. */
export function wilson(k: number, n: number): { low: number; high: number } {
  if (n === 0) return { low: 0, high: 1 }
  const z = 1.96
  const p = k / n
  const d = 1 + (z * z) / n
  const center = (p + (z * z) / (2 * n)) / d
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / d
  return { low: Math.max(0, center - half), high: Math.min(1, center + half) }
}

/** Runs per bar, as a title says it: "2 runs per bar" or "1 to 3 runs per bar". */
function runsPerBar(s: Summary): string {
  const ns = s.cells.map((c) => c.runs)
  if (ns.length === 0) return 'no runs'
  const lo = Math.min(...ns)
  const hi = Math.max(...ns)
  return lo === hi ? `n = ${lo} run${lo === 1 ? '' : 's'} per bar` : `n = ${lo} to ${hi} runs per bar`
}

/** Width of `text` at `fontPx` in a sans-serif font, over-estimated so that nothing overlaps. */
function textWidth(text: string, fontPx: number): number {
  return text.length * fontPx * 0.62
}

export const CHART_WIDTH = 960

/**
 * Two bar charts, C fooled and attack detected, by coalition size, one bar per defense set, each
 * with its 95% interval over the runs (seeds). The plot spans the whole width whatever the number
 * of sizes and sets; the legend wraps to as many rows as it needs.
 */
export function renderSvg(s: Summary, options: { responsive?: boolean } = {}): string {
  const sizes = [...new Set(s.cells.map((c) => c.coalitionSize))].sort((a, b) => a - b)
  const sets = DEFENSE_SETS.filter((d) => s.cells.some((c) => c.defense === d))
  const width = CHART_WIDTH
  const left = 56
  const right = 16
  const plotW = width - left - right
  const panelH = 200
  const legendRowH = 18
  // legend rows: entries placed left to right, wrapped at the plot's width
  const legend: Array<{ d: DefenseSet; x: number; row: number }> = []
  let lx = left
  let row = 0
  for (const d of sets) {
    const w = 15 + textWidth(d, 12) + 18
    if (lx + w > left + plotW && lx > left) {
      lx = left
      row++
    }
    legend.push({ d, x: lx, row })
    lx += w
  }
  const legendTop = 34
  const top = legendTop + (row + 1) * legendRowH + 30
  const panelGap = 74
  const height = top + 2 * panelH + panelGap + 50
  const out: string[] = []
  const size =
    options.responsive === true ? `width="100%" style="max-width:${width}px"` : `width="${width}" height="${height}"`
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" ${size} viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`
  )
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`)
  out.push(
    `<text class="chart-title" x="${left}" y="20" font-size="15" font-weight="bold">${esc(`Coalition-drop attack: ${s.totalRuns} run${s.totalRuns === 1 ? '' : 's'}, ${s.members} members, ${runsPerBar(s)}`)}</text>`
  )
  for (const e of legend) {
    const y = legendTop + e.row * legendRowH
    out.push(
      `<g class="legend-entry" data-defense="${e.d}"><rect x="${e.x}" y="${y}" width="11" height="11" fill="${COLORS[e.d]}"/><text x="${e.x + 15}" y="${y + 10}">${esc(e.d)}</text></g>`
    )
  }
  const panels: Array<{ title: string; count: (c: Cell) => number; value: (c: Cell) => number | null }> = [
    { title: 'C fooled (signed S2): share of runs', count: (c) => c.fooled, value: (c) => c.fooledRate },
    {
      title: 'attack detected by an honest node: share of runs',
      count: (c) => c.detected,
      value: (c) => c.detectionRate
    }
  ]
  const groupW = plotW / Math.max(1, sizes.length)
  const barW = (groupW * 0.8) / Math.max(1, sets.length)
  panels.forEach((p, pi) => {
    const y0 = top + pi * (panelH + panelGap)
    out.push(
      `<text class="panel-title" x="${left}" y="${y0 - 10}" font-weight="bold">${esc(`${p.title} (${s.members} members, ${runsPerBar(s)}; whiskers: 95% interval)`)}</text>`
    )
    for (const t of [0, 0.25, 0.5, 0.75, 1]) {
      const y = y0 + panelH - t * panelH
      out.push(`<line x1="${left}" y1="${y}" x2="${left + plotW}" y2="${y}" stroke="#e0e0e0"/>`)
      out.push(`<text x="${left - 6}" y="${y + 4}" text-anchor="end">${Math.round(t * 100)}%</text>`)
    }
    sizes.forEach((k, gi) => {
      const gx = left + gi * groupW + groupW * 0.1
      sets.forEach((d, bi) => {
        const c = s.cells.find((x) => x.coalitionSize === k && x.defense === d)
        const v = c === undefined ? null : p.value(c)
        if (v === null || c === undefined) return
        const x = gx + bi * barW
        const h = Math.max(v * panelH, 1.5)
        const ci = wilson(p.count(c), c.runs)
        const label = `coalition ${k}, ${d}: ${pct(v)} of ${c.runs} runs (95% interval ${pct(ci.low)} to ${pct(ci.high)})`
        out.push(
          `<rect class="bar" data-defense="${d}" data-size="${k}" x="${x.toFixed(1)}" y="${(y0 + panelH - h).toFixed(1)}" width="${Math.max(1, barW - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${COLORS[d]}"><title>${esc(label)}</title></rect>`
        )
        const cx = x + (barW - 2) / 2
        const yl = y0 + panelH - ci.low * panelH
        const yh = y0 + panelH - ci.high * panelH
        const cap = Math.min(6, barW / 3)
        out.push(
          `<path class="ci" d="M${cx.toFixed(1)} ${yl.toFixed(1)}V${yh.toFixed(1)}M${(cx - cap).toFixed(1)} ${yl.toFixed(1)}h${(2 * cap).toFixed(1)}M${(cx - cap).toFixed(1)} ${yh.toFixed(1)}h${(2 * cap).toFixed(1)}" stroke="#333" stroke-width="1" fill="none"/>`
        )
      })
      out.push(
        `<text x="${(left + gi * groupW + groupW / 2).toFixed(1)}" y="${y0 + panelH + 16}" text-anchor="middle">${k}</text>`
      )
    })
    out.push(`<line x1="${left}" y1="${y0 + panelH}" x2="${left + plotW}" y2="${y0 + panelH}" stroke="#444"/>`)
    out.push(
      `<text x="${left + plotW / 2}" y="${y0 + panelH + 34}" text-anchor="middle" fill="#444">coalition size (members hiding S1, A included)</text>`
    )
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}

/** The summary as CSV: one line per coalition size and defense set, rates with their 95% intervals. */
export function renderCsv(s: Summary): string {
  const head = [
    'coalition',
    'defenses',
    'members',
    'runs',
    'errors',
    'fooled',
    'fooled_rate',
    'fooled_low95',
    'fooled_high95',
    'detected',
    'detection_rate',
    'detected_low95',
    'detected_high95',
    ...DEFENSE_ORDER.map((d) => `by_${d.replace('-', '_')}`),
    'detected_before_offer',
    'first_detection_median_ms',
    'accepted_by_c'
  ]
  const num = (x: number | null): string => (x === null ? '' : String(Math.round(x * 10_000) / 10_000))
  const lines = s.cells.map((c) => {
    const f = wilson(c.fooled, c.runs)
    const d = wilson(c.detected, c.runs)
    return [
      String(c.coalitionSize),
      c.defense,
      String(s.members),
      String(c.runs),
      String(c.errors),
      String(c.fooled),
      num(c.fooledRate),
      num(c.runs === 0 ? null : f.low),
      num(c.runs === 0 ? null : f.high),
      String(c.detected),
      num(c.detectionRate),
      num(c.runs === 0 ? null : d.low),
      num(c.runs === 0 ? null : d.high),
      ...DEFENSE_ORDER.map((x) => String(c.byDefense[x] ?? 0)),
      String(c.detectedBeforeOffer),
      c.firstDetectionMedianMs === null ? '' : String(c.firstDetectionMedianMs),
      String(c.acceptedByC)
    ].join(',')
  })
  return [head.join(','), ...lines].join('\n') + '\n'
}

export function renderHtml(s: Summary): string {
  const rows = tableRows(s)
    .map(
      (r) =>
        `<tr>${r.map((cell, i) => `<td${i === 0 || i === 2 ? ' class="num"' : ''}>${esc(cell)}</td>`).join('')}</tr>`
    )
    .join('\n')
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>poolboard lab: coalition-drop attack</title>
<style>
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1000px; }
svg { display: block; margin: 1em 0; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; }
code { background: #f4f4f4; padding: 1px 4px; }
</style>
</head>
<body>
<h1>Coalition-drop attack</h1>
<p>${s.totalRuns} runs of ${s.members} members${s.errors > 0 ? ` (${s.errors} failed to set up, left out of the rates)` : ''}, ${(s.durationMs / 60_000).toFixed(1)} min, ${esc(s.createdAt)}.<br>
<code>${esc(s.command)}</code><br>
poolboard ${esc(s.version)} on ${esc(s.machine)}. Data next to this page: <code>summary.json</code>, <code>summary.csv</code>, <code>runs/</code>.</p>
<p>A coalition of board hosts (A, the equivocator, and k &minus; 1 others) drops the committed partition statement S1 (A with B) from its logs and leads the board
while C, who was offline, catches up; then A offers C a partition S2 spending A's output again. C is <b>fooled</b> if it signs S2.
<b>Detected</b>: an honest node's defense saw the attack (before or after the offer). Each run is replayable from the seed in its record (<code>runs/</code>).</p>
${renderSvg(s, { responsive: true })}
<table>
<tr>${TABLE_HEADERS.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>
${rows}
</table>
</body>
</html>
`
}
