import type { Json } from '../../api/server.js'
import type { NodeSnapshot } from '../node-page.js'
import type { PoolNodeView } from '../../pool/view.js'
import { clock, h, sats, short, table, type Child } from './dom.js'
import { LatencyChart } from './chart.js'

export type Snapshot = Json<NodeSnapshot>

/** One node's panels: who, balance, members online, board, pool tree, alarms, rounds, latency chart. */
export class NodeView {
  readonly root: HTMLElement
  private readonly body: HTMLElement
  private readonly banner: HTMLElement
  private readonly chart: LatencyChart
  private last: Snapshot | null = null

  constructor(private readonly compact: boolean) {
    this.banner = h('div', { class: 'banner offline', 'data-test': 'reachability' }, 'connecting…')
    this.body = h('div', { class: 'panels' })
    this.chart = new LatencyChart(compact ? 300 : 560, compact ? 120 : 180)
    this.root = h(
      'section',
      { class: compact ? 'node compact' : 'node' },
      this.banner,
      this.body,
      h('div', { class: 'panel chart' }, h('h3', {}, "round latency (ms), this node's rounds"), this.chart.root)
    )
  }

  setReachable(reachable: boolean, why: string): void {
    this.root.dataset.reachable = String(reachable)
    this.banner.className = reachable ? 'banner online' : 'banner offline'
    this.banner.textContent = reachable ? `live · updated ${clock(Date.now())}` : `node unreachable: ${why}`
  }

  update(s: Snapshot): void {
    this.last = s
    this.root.dataset.node = s.node.name
    this.body.replaceChildren(...this.panels(s))
    this.chart.update(s.rounds.map((r) => ({ atMs: r.atMs, latencyMs: r.latencyMs, ok: r.outcome === 'ok' })))
    if (this.root.dataset.reachable === 'true') this.banner.textContent = `live · updated ${clock(Date.now())}`
  }

  get snapshot(): Snapshot | null {
    return this.last
  }

  private panels(s: Snapshot): HTMLElement[] {
    const { node, board, pool } = s
    const me = pool?.me.name ?? node.name
    const balance = pool?.balances[me]
    const online = new Set([node.name, ...node.connectedPeers.map((p) => p.name)])
    const memberNames = [...new Set([...board.voters, ...board.learners].map((m) => m.name ?? short(m.peerId)))].sort(
      (a, b) => a.localeCompare(b, 'en', { numeric: true })
    )
    const out: HTMLElement[] = []
    out.push(
      panel('member', [
        h(
          'div',
          { class: 'who' },
          h('b', { 'data-test': 'node-name' }, node.name),
          node.lab ? h('span', { class: 'tag lab' }, node.labCoalition ? 'lab · coalition' : 'lab') : null,
          node.cut ? h('span', { class: 'tag bad', 'data-test': 'cut' }, 'cut off') : null
        ),
        h(
          'div',
          { class: 'big', 'data-test': 'my-balance' },
          pool === null || pool.poolId === null ? 'no pool yet' : sats(balance)
        ),
        h('div', { class: 'dim' }, pool?.me.poolLabel ?? ''),
        this.compact
          ? null
          : h(
              'div',
              { class: 'dim mono' },
              `peer ${short(node.peerId, 16)} · key ${short(node.memberKey, 16)} · v${node.version} · up ${node.uptimeSeconds} s`
            )
      ])
    )
    out.push(
      panel(`members online ${node.connectedPeerCount + 1}/${Math.max(node.memberCount, 1)}`, [
        h(
          'ul',
          { class: 'members' },
          memberNames.map((n) =>
            h('li', { class: online.has(n) ? 'on' : 'off', 'data-member': n, 'data-online': String(online.has(n)) }, n)
          )
        )
      ])
    )
    const lagRows: Child[][] = (board.progress ?? []).map((p) => [
      p.member.name ?? short(p.member.peerId),
      String(p.match),
      String(Math.max(0, board.lastIndex - p.match)),
      p.state + (p.learner ? ' (learner)' : '')
    ])
    out.push(
      panel('board', [
        h(
          'dl',
          { class: 'kv' },
          kv('role', h('span', { 'data-test': 'role', class: board.role === 'leader' ? 'good' : '' }, board.role)),
          kv('leader', board.leader?.name ?? 'none known'),
          kv('term', board.term),
          kv('commit', h('span', { 'data-test': 'commit' }, String(board.commit))),
          kv('applied', h('span', { 'data-test': 'applied' }, String(board.applied))),
          kv('last index', board.lastIndex),
          kv('snapshot', board.snapshotIndex)
        ),
        board.progress === null
          ? h(
              'p',
              { class: 'dim' },
              `this node applied ${board.applied} of ${board.commit} committed (lag ${Math.max(0, board.commit - board.applied)}); each member's lag is known on the leader (${board.leader?.name ?? 'none'})`
            )
          : table(['member', 'match', 'lag', 'state'], lagRows, { class: 'lag' })
      ])
    )
    if (pool !== null) {
      out.push(
        panel(
          pool.poolId === null
            ? 'pool'
            : `pool ${short(pool.poolId, 16)} · state ${pool.state ?? '-'} · ${sats(pool.totalSats)}`,
          [
            pool.tree === null
              ? h('p', { class: 'dim' }, 'no pool on the board yet')
              : h('div', { class: 'tree', 'data-test': 'pool-tree' }, treeNode(pool.tree)),
            pool.pending.length === 0
              ? null
              : h(
                  'div',
                  { class: 'pending' },
                  pool.pending.map((p) =>
                    h(
                      'div',
                      {},
                      `round ${p.what}: signed ${p.signed.join(', ') || '-'}; waiting for ${p.missing.join(', ') || '-'}${p.refused.length > 0 ? `; refused by ${p.refused.join(', ')}` : ''}`
                    )
                  )
                )
          ]
        )
      )
    }
    const alarms: Child[] = []
    for (const e of s.evidence?.evidence ?? [])
      alarms.push(
        h(
          'li',
          { class: 'bad' },
          `evidence: ${String(e.member)} equivocated (board index ${String(e.index)}, ${String(e.source)})`
        )
      )
    for (const a of s.defense?.alarms ?? [])
      alarms.push(
        h(
          'li',
          { class: a.how === 'learned' ? 'warn' : 'bad', 'data-defense': a.defense },
          `${clock(a.atMs)} ${a.defense} ${a.how}: ${a.message}`
        )
      )
    for (const a of board.recentAlarms)
      alarms.push(h('li', { class: 'bad', 'data-alarm': String(a.kind) }, boardAlarmText(a)))
    const enabled =
      s.defense === null
        ? ''
        : Object.entries(s.defense.enabled)
            .filter(([, on]) => on)
            .map(([d]) => d)
            .join(', ')
    out.push(
      panel(`evidence and alarms (${alarms.length})`, [
        h('div', { class: 'dim' }, `defenses on: ${enabled || 'none'}`),
        alarms.length === 0
          ? h('p', { class: 'good' }, 'none')
          : h('ul', { class: 'alarms', 'data-test': 'alarms' }, alarms)
      ])
    )
    if (!this.compact || s.rounds.length > 0) {
      out.push(
        panel('recent rounds', [
          s.rounds.length === 0
            ? h('p', { class: 'dim' }, 'none proposed by this node yet')
            : table(
                ['time', 'round', 'outcome', 'latency', 'detail'],
                s.rounds
                  .slice(-10)
                  .reverse()
                  .map((r) => [
                    clock(r.atMs),
                    r.what,
                    h('span', { class: r.outcome === 'ok' ? 'good' : 'bad' }, r.outcome),
                    `${r.latencyMs} ms`,
                    r.detail
                  ]),
                { class: 'rounds', 'data-test': 'rounds' }
              )
        ])
      )
    }
    if (!this.compact) {
      out.push(
        panel('board entries applied', [
          s.entries.length === 0
            ? h('p', { class: 'dim' }, 'none since the node started')
            : table(
                ['time', 'index', 'kind', 'outcome', 'pool', 'state'],
                s.entries
                  .slice(-10)
                  .reverse()
                  .map((e) => [
                    clock(e.atMs),
                    String(e.index),
                    e.kind,
                    h('span', { class: e.outcome === 'accepted' ? 'good' : 'bad', title: e.reason }, e.outcome),
                    e.pool === null ? '-' : short(e.pool, 24),
                    e.state === null ? '-' : String(e.state)
                  ])
              )
        ])
      )
    }
    return out
  }
}

/** A board alarm (the Raft core's, with byte fields in hex) in a line. */
function boardAlarmText(a: Record<string, unknown>): string {
  const from = a.from as { name?: string | null; peerId?: string } | undefined
  const who = from?.name ?? short(from?.peerId)
  const when = typeof a.at === 'string' ? `${a.at.slice(11, 23)} ` : ''
  if (a.kind === 'committed-entry-conflict') {
    return `${when}board alarm: ${who} (term ${String(a.term)}) offered entry ${String(a.index)} as term ${String(a.offeredTerm)} hash ${short(String(a.offeredHash), 16)}; committed here: term ${String(a.localTerm)} hash ${short(String(a.localHash), 16)}`
  }
  if (a.kind === 'refused-message')
    return `${when}board alarm: refused ${who}'s ${String(a.type)} (term ${String(a.term)}): ${String(a.reason)}`
  if (a.kind === 'commit-beyond-log')
    return `${when}board alarm: ${who} (term ${String(a.term)}) says entries up to ${String(a.commit)} are here; the log ends at ${String(a.lastIndex)} (lost writes?)`
  return `${when}board alarm: ${who} (term ${String(a.term)}) sent an invalid append at ${String(a.index)}: ${String(a.reason)}`
}

function panel(title: string, children: Child[]): HTMLElement {
  return h('div', { class: 'panel' }, h('h3', {}, title), children)
}

function kv(k: string, v: Child): Child[] {
  return [h('dt', {}, k), h('dd', {}, v)]
}

function treeNode(n: Json<PoolNodeView>): HTMLElement {
  const balances = Object.entries(n.balances)
  return h(
    'div',
    { class: `pool ${n.status}`, 'data-ref': n.ref, 'data-state': n.state },
    h(
      'div',
      { class: 'pool-head' },
      h('b', {}, n.label),
      ' ',
      h('span', { class: `tag ${n.status === 'open' ? 'good' : 'warn'}` }, n.status),
      ` state ${n.state} · ${sats(n.totalSats)}`
    ),
    balances.length === 0
      ? null
      : h(
          'ul',
          { class: 'balances' },
          balances.map(([name, b]) =>
            h('li', { 'data-balance': name }, h('span', {}, name), ' ', h('span', { class: 'num' }, sats(b)))
          )
        ),
    n.children.length === 0 ? null : h('div', { class: 'children' }, n.children.map(treeNode))
  )
}
