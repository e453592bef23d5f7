import type { Json } from '../../api/server.js'
import type { LabRunView, LabSnapshot } from '../lab-watch.js'
import { h, short, table } from './dom.js'
import { connect } from './live.js'

type Lab = Json<LabSnapshot>

/** The coalition-drop campaign as it runs: cast, boards, the dropped statement, alarms, verdicts. */
export function renderLabPage(app: HTMLElement): void {
  const banner = h('div', { class: 'banner offline', 'data-test': 'reachability' }, 'connecting…')
  const body = h('div', {})
  app.replaceChildren(h('h1', {}, 'coalition-drop attack, live'), banner, body)
  connect<Lab>({
    onReachable: (ok, why) => {
      banner.className = ok ? 'banner online' : 'banner offline'
      banner.textContent = ok ? 'live' : `the lab is unreachable: ${why}`
    },
    onSnapshot: (s) => {
      body.replaceChildren(...render(s))
    }
  })
}

function render(s: Lab): HTMLElement[] {
  const out: HTMLElement[] = []
  out.push(h('p', { class: 'dim mono' }, s.command))
  out.push(h('p', {}, `${s.finished.length} of ${s.totalRuns} runs done · ${s.members} members · seed ${s.seed}`))
  const r = s.current
  if (r !== null) {
    out.push(
      h(
        'div',
        { class: 'panel' },
        h('h3', {}, `run ${r.run + 1}: coalition ${r.coalitionSize}, defenses ${r.defense}, seed ${r.seed}`),
        h(
          'dl',
          { class: 'kv', 'data-test': 'cast' },
          h('dt', {}, 'A (equivocator)'),
          h('dd', {}, r.cast.a),
          h('dt', {}, 'B (with A in S1)'),
          h('dd', {}, r.cast.b),
          h('dt', {}, 'C (catches up)'),
          h('dd', {}, r.cast.c),
          h('dt', {}, 'coalition'),
          h('dd', {}, r.cast.coalition.join(', ') || 'none'),
          h('dt', {}, 'coalition leader'),
          h('dd', {}, r.cast.leader ?? '-'),
          h('dt', {}, 'S1 (dropped)'),
          h(
            'dd',
            { 'data-test': 's1' },
            r.s1 === null ? 'not yet' : `statement ${short(r.s1.statementId, 16)} at board index ${r.s1.index}`
          ),
          h('dt', {}, 'C caught up'),
          h(
            'dd',
            { 'data-test': 'caught-up' },
            r.cCaughtUp === null ? 'not yet' : r.cCaughtUp ? 'yes' : 'no (timed out)'
          ),
          h('dt', {}, 'S2 (offered to C)'),
          h(
            'dd',
            {},
            r.s2 === null
              ? 'not yet'
              : `${r.s2.outcome}${r.s2.statementId === null ? '' : ` · ${short(r.s2.statementId, 16)}`} · signed by ${r.s2.signed.join(', ') || 'no one'}`
          )
        ),
        h(
          'ol',
          { class: 'steps', 'data-test': 'steps' },
          r.steps.map((x) => h('li', {}, `${(x.atMs / 1000).toFixed(1)} s  ${x.step}`))
        ),
        verdict(r)
      )
    )
    const hashes = new Map<string, number>()
    for (const n of s.nodes) if (n.hash !== null) hashes.set(n.hash, (hashes.get(n.hash) ?? 0) + 1)
    out.push(
      h(
        'div',
        { class: 'panel' },
        h('h3', {}, "each node's board"),
        table(
          ['node', 'part', 'state', 'role', 'leader', 'applied', 'commit', 'hash at applied', 'alarms'],
          s.nodes.map((n) => [
            n.name,
            n.roles.join(', '),
            n.running ? 'running' : n.applied === null ? 'stopped' : 'stopped (last seen)',
            n.role ?? '-',
            n.leader ?? '-',
            n.applied === null ? '-' : String(n.applied),
            n.commit === null ? '-' : String(n.commit),
            h(
              'span',
              { class: `mono hash${n.hash === null ? '' : ` h${[...hashes.keys()].indexOf(n.hash) % 4}`}` },
              short(n.hash, 12)
            ),
            n.alarms.length === 0
              ? '-'
              : h(
                  'ul',
                  { class: 'alarms' },
                  n.alarms.map((a) =>
                    h(
                      'li',
                      { class: a.how === 'learned' ? 'warn' : 'bad', 'data-defense': a.defense },
                      `${a.defense} ${a.how}: ${a.message}`
                    )
                  )
                )
          ]),
          { 'data-test': 'nodes' }
        )
      )
    )
  }
  if (s.finished.length > 0) {
    out.push(
      h(
        'div',
        { class: 'panel' },
        h('h3', {}, 'finished runs'),
        table(
          ['run', 'coalition', 'defenses', 'verdict'],
          s.finished.map((f) => [String(f.run + 1), String(f.coalitionSize), f.defense, f.verdict?.text ?? '-']),
          { 'data-test': 'finished' }
        )
      )
    )
  }
  if (s.done !== null) {
    out.push(
      h(
        'div',
        { class: 'panel done', 'data-test': 'done' },
        h('h3', {}, 'campaign finished'),
        h(
          'p',
          {},
          `${s.done.summary.totalRuns} run${s.done.summary.totalRuns === 1 ? '' : 's'} in ${(s.done.summary.durationMs / 1000).toFixed(0)} s; poolboard ${s.done.summary.version} on ${s.done.summary.machine}`
        ),
        h(
          'p',
          {},
          h('a', { href: 'report', target: '_blank', 'data-test': 'report-link' }, 'the report'),
          ` (also in ${s.done.outDir}: report.html, summary.json, summary.csv, runs/)`
        )
      )
    )
  }
  return out
}

function verdict(r: Json<LabRunView>): HTMLElement | null {
  if (r.verdict === null) return h('p', { class: 'dim', 'data-test': 'verdict' }, 'running…')
  const v = r.verdict
  const cls = v.error !== null ? 'warn' : v.fooled ? 'bad' : 'good'
  return h(
    'div',
    { class: `verdict ${cls}`, 'data-test': 'verdict', 'data-fooled': String(v.fooled) },
    h('b', {}, v.error !== null ? 'run failed' : v.fooled ? 'C was fooled: it signed S2' : 'C was not fooled'),
    h(
      'div',
      {},
      v.detectedBy.length === 0 ? 'no honest node detected the attack' : `detected by ${v.detectedBy.join(', ')}`
    ),
    v.error === null ? null : h('div', {}, v.error)
  )
}
