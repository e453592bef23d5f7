import type { Json } from '../../api/server.js'
import type { ClusterSnapshot } from '../cluster-page.js'
import { h } from './dom.js'
import { act, connect } from './live.js'
import { NodeView } from './node-view.js'

type Cluster = Json<ClusterSnapshot>

/** Every node of a local cluster side by side, who is connected to whom, and the cluster commands. */
export function renderClusterPage(app: HTMLElement): void {
  const banner = h('div', { class: 'banner offline', 'data-test': 'reachability' }, 'connecting…')
  const links = h('div', { class: 'panel links' })
  const grid = h('div', { class: 'grid' })
  const message = h('div', { class: 'dim', 'data-test': 'action-result' })
  const title = h('h1', {}, 'poolboard cluster')
  app.replaceChildren(title, banner, h('div', { class: 'row' }, links, message), grid)
  const views = new Map<number, { card: HTMLElement; head: HTMLElement; view: NodeView; offline: HTMLElement }>()
  const command = (name: string, node: number): void => {
    message.textContent = `${name} node ${node}…`
    act(name, { node }).then(
      () => {
        message.textContent = `${name} node ${node}: done`
      },
      (err: Error) => {
        message.textContent = `${name} node ${node}: ${err.message}`
      }
    )
  }
  connect<Cluster>({
    onReachable: (ok, why) => {
      banner.className = ok ? 'banner online' : 'banner offline'
      banner.textContent = ok ? 'live' : `the cluster page's server is unreachable: ${why}`
    },
    onSnapshot: (c) => {
      title.textContent = `poolboard cluster ${c.dir}`
      for (const n of c.nodes) {
        let v = views.get(n.index)
        if (v === undefined) {
          const view = new NodeView(true)
          const head = h('div', { class: 'card-head' })
          const offline = h('div', { class: 'banner offline big-offline' })
          const card = h('div', { class: 'card', 'data-index': n.index, 'data-name': n.name }, head, offline, view.root)
          v = { card, head, view, offline }
          views.set(n.index, v)
          grid.append(card)
        }
        const cut = n.snapshot?.node.cut === true
        v.card.dataset.state = !n.running ? 'stopped' : n.snapshot === null ? 'unreachable' : cut ? 'cut' : 'running'
        v.head.replaceChildren(
          h('b', {}, `${n.index} · ${n.name}`),
          ' ',
          h('span', { class: 'dim' }, n.api),
          h(
            'span',
            { class: 'buttons' },
            n.running
              ? h(
                  'button',
                  {
                    onclick: () => {
                      command('stop', n.index)
                    }
                  },
                  'stop'
                )
              : h(
                  'button',
                  {
                    onclick: () => {
                      command('start', n.index)
                    }
                  },
                  'start'
                ),
            n.running && !cut
              ? h(
                  'button',
                  {
                    onclick: () => {
                      command('cut', n.index)
                    }
                  },
                  'cut'
                )
              : null,
            n.running && cut
              ? h(
                  'button',
                  {
                    onclick: () => {
                      command('heal', n.index)
                    }
                  },
                  'heal'
                )
              : null
          )
        )
        if (n.snapshot === null) {
          v.offline.hidden = false
          v.offline.textContent = n.running ? `offline: ${n.problem ?? 'not answering'}` : 'offline: stopped'
          v.view.root.hidden = true
        } else {
          v.offline.hidden = true
          v.view.root.hidden = false
          v.view.setReachable(true, '')
          v.view.update(n.snapshot)
        }
      }
      links.replaceChildren(h('h3', {}, 'member links (✓ connected)'), linkMatrix(c))
    }
  })
}

function linkMatrix(c: Cluster): HTMLElement {
  const names = c.nodes.map((n) => n.name)
  const connected = new Map(
    c.nodes.map((n) => [n.name, new Set(n.snapshot?.node.connectedPeers.map((p) => p.name) ?? [])])
  )
  return h(
    'table',
    { class: 'matrix', 'data-test': 'links' },
    h(
      'tr',
      {},
      h('th', {}, ''),
      names.map((x) => h('th', {}, x))
    ),
    c.nodes.map((row) =>
      h(
        'tr',
        {},
        h('th', {}, row.name),
        names.map((col) => {
          if (col === row.name) return h('td', { class: 'dim' }, '·')
          const up = connected.get(row.name)?.has(col) === true
          return h(
            'td',
            { class: up ? 'good' : 'bad', 'data-link': `${row.name}-${col}`, 'data-up': String(up) },
            up ? '✓' : '✗'
          )
        })
      )
    )
  )
}
