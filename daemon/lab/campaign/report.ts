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
  totalRuns: number
  errors: number
  durationMs: number
  cells: Cell[]
}

const DEFENSE_ORDER: readonly DefenseName[] = ['quorum-read', 'hash-chain', 'gossip-check', 'evidence']

export function summarize (records: readonly RunRecord[], meta: { command: string, durationMs: number, createdAt?: string }): Summary {
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
      const a = r.fooled ? 'signed' : r.cRefusal?.code ?? 'no answer'
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
  cells.sort((a, b) => a.coalitionSize - b.coalitionSize || DEFENSE_SETS.indexOf(a.defense) - DEFENSE_SETS.indexOf(b.defense))
  return {
    createdAt: meta.createdAt ?? new Date().toISOString(),
    command: meta.command,
    totalRuns: records.length,
    errors: records.filter((r) => r.error !== null).length,
    durationMs: meta.durationMs,
    cells
  }
}

const pct = (x: number | null): string => x === null ? '-' : `${Math.round(x * 100)}%`

function ratio (count: number, runs: number, rate: number | null): string {
  return runs === 0 ? '-' : `${count}/${runs} ${pct(rate)}`
}

function byText (c: Cell): string {
  const parts = DEFENSE_ORDER.filter((d) => c.byDefense[d] !== undefined).map((d) => `${d} ${c.byDefense[d]}`)
  return parts.length === 0 ? '-' : parts.join(', ')
}

function whenText (c: Cell): string {
  if (c.firstDetectionMedianMs === null) return '-'
  const ms = c.firstDetectionMedianMs
  return ms < 0 ? `${(-ms / 1000).toFixed(1)} s before` : `${(ms / 1000).toFixed(1)} s after`
}

function answersText (c: Cell): string {
  return Object.entries(c.cAnswers).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ') || '-'
}

export const TABLE_HEADERS = ['coalition', 'defenses', 'runs', 'C fooled', 'detected', 'by', 'first detection (median)', 'C answered'] as const

export function tableRows (s: Summary): string[][] {
  return s.cells.map((c) => [
    String(c.coalitionSize), c.defense, String(c.runs + c.errors) + (c.errors > 0 ? ` (${c.errors} failed)` : ''),
    ratio(c.fooled, c.runs, c.fooledRate), ratio(c.detected, c.runs, c.detectionRate), byText(c), whenText(c), answersText(c)
  ])
}

export function renderSummaryTable (s: Summary): string {
  return renderTable([...TABLE_HEADERS], tableRows(s), { alignRight: [0, 2] })
}

// ---- chart ----

const COLORS: Record<DefenseSet, string> = {
  none: '#9e9e9e',
  'quorum-read': '#1f77b4',
  'hash-chain': '#2ca02c',
  'gossip-check': '#9467bd',
  evidence: '#ff7f0e',
  all: '#d62728'
}

function esc (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** Two bar charts, C fooled and attack detected, by coalition size, one bar per defense set. */
export function renderSvg (s: Summary): string {
  const sizes = [...new Set(s.cells.map((c) => c.coalitionSize))].sort((a, b) => a - b)
  const sets = DEFENSE_SETS.filter((d) => s.cells.some((c) => c.defense === d))
  const barW = 14
  const gap = 18
  const groupW = Math.max(1, sets.length) * barW + gap
  const plotW = Math.max(240, sizes.length * groupW)
  const left = 56
  const panelH = 200
  const top = 80
  const panelGap = 70
  const width = left + plotW + 24
  const height = top + 2 * panelH + panelGap + 56
  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`)
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`)
  out.push(`<text x="${left}" y="20" font-size="15" font-weight="bold">Coalition-drop attack: ${s.totalRuns} runs</text>`)
  // legend
  let lx = left
  for (const d of sets) {
    out.push(`<rect x="${lx}" y="32" width="11" height="11" fill="${COLORS[d]}"/><text x="${lx + 15}" y="42">${esc(d)}</text>`)
    lx += 22 + d.length * 7
  }
  const panels: Array<{ title: string, value: (c: Cell) => number | null }> = [
    { title: 'C fooled (signed S2), share of runs', value: (c) => c.fooledRate },
    { title: 'attack detected by an honest node, share of runs', value: (c) => c.detectionRate }
  ]
  panels.forEach((p, pi) => {
    const y0 = top + pi * (panelH + panelGap)
    out.push(`<text x="${left}" y="${y0 - 8}" font-weight="bold">${esc(p.title)}</text>`)
    for (const t of [0, 0.25, 0.5, 0.75, 1]) {
      const y = y0 + panelH - t * panelH
      out.push(`<line x1="${left}" y1="${y}" x2="${left + plotW}" y2="${y}" stroke="#e0e0e0"/>`)
      out.push(`<text x="${left - 6}" y="${y + 4}" text-anchor="end">${Math.round(t * 100)}%</text>`)
    }
    sizes.forEach((k, gi) => {
      const gx = left + gap / 2 + gi * groupW
      sets.forEach((d, bi) => {
        const c = s.cells.find((x) => x.coalitionSize === k && x.defense === d)
        const v = c === undefined ? null : p.value(c)
        const x = gx + bi * barW
        if (v === null) return
        const h = Math.max(v * panelH, 1.5)
        const label = `coalition ${k}, ${d}: ${pct(v)} of ${c!.runs} runs`
        out.push(`<rect x="${x}" y="${y0 + panelH - h}" width="${barW - 2}" height="${h}" fill="${COLORS[d]}"><title>${esc(label)}</title></rect>`)
      })
      out.push(`<text x="${gx + (sets.length * barW) / 2}" y="${y0 + panelH + 16}" text-anchor="middle">${k}</text>`)
    })
    out.push(`<line x1="${left}" y1="${y0 + panelH}" x2="${left + plotW}" y2="${y0 + panelH}" stroke="#444"/>`)
    out.push(`<text x="${left + plotW / 2}" y="${y0 + panelH + 32}" text-anchor="middle" fill="#444">coalition size (members hiding S1, A included)</text>`)
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}

export function renderHtml (s: Summary): string {
  const rows = tableRows(s).map((r) => `<tr>${r.map((cell, i) => `<td${i === 0 || i === 2 ? ' class="num"' : ''}>${esc(cell)}</td>`).join('')}</tr>`).join('\n')
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>poolboard lab: coalition-drop attack</title>
<style>
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 70em; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; }
code { background: #f4f4f4; padding: 1px 4px; }
</style>
</head>
<body>
<h1>Coalition-drop attack</h1>
<p>${s.totalRuns} runs${s.errors > 0 ? ` (${s.errors} failed to set up, left out of the rates)` : ''}, ${(s.durationMs / 60_000).toFixed(1)} min, ${esc(s.createdAt)}.<br>
<code>${esc(s.command)}</code></p>
<p>A coalition of board hosts (A, the equivocator, and k &minus; 1 others) drops the committed partition statement S1 (A with B) from its logs and leads the board
while C, who was offline, catches up; then A offers C a partition S2 spending A's output again. C is <b>fooled</b> if it signs S2.
<b>Detected</b>: an honest node's defense saw the attack (before or after the offer). Each run is replayable from the seed in its record (<code>runs/</code>).</p>
${renderSvg(s)}
<table>
<tr>${TABLE_HEADERS.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>
${rows}
</table>
</body>
</html>
`
}
