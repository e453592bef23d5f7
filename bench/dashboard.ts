import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { chromium } from 'playwright-core'
import { AdminClient } from '../daemon/api/client.js'
import { DataDir } from '../daemon/host/datadir.js'
import { renderTable } from '../daemon/host/table.js'
import { waitFor } from '../daemon/host/wait.js'
import { poolboard } from './board.js'
import { fmt, numberOption, summarize, writeResult } from './lib.js'

/** The dashboard's promise (docs/dashboard.md): a change is on the page within a second. */
const GOAL_MS = 1_000
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync'
]

/**
 * How long a change takes to reach the dashboard: payments on a 3-node cluster, each node's page
 * open in Chromium. For every payment and page: from the moment the node applied the new state
 * (its own clock, in the snapshot's applied entries) to the moment the page's DOM shows it (the
 * page's clock: the same machine); and end to end, from the payment request to another member's
 * page. Also: from stopping a node to its page saying so.
 */
export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { payments: { type: 'string', default: '30' }, chromium: { type: 'string', default: '/usr/bin/chromium' } }
  })
  const payments = numberOption('payments', values.payments, { min: 1, integer: true })
  const base = mkdtempSync(join(tmpdir(), 'poolboard-bench-dashboard-'))
  const dir = join(base, 'cluster')
  const profile = join(base, 'chromium')
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: values.chromium,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1200, height: 900 }
  })
  try {
    await poolboard(['cluster', 'up', '--nodes', '3', '--pool', '--dir', dir, '--set', 'block-interval-s=0', '--json'])
    const datadir = (i: number): string => join(dir, `node${i}`)
    const pages = await Promise.all(
      [1, 2, 3].map(async (i) => {
        const { url } = JSON.parse(await poolboard(['dashboard', '--datadir', datadir(i), '--no-open', '--json'])) as {
          url: string
        }
        const page = await browser.newPage()
        await page.goto(url)
        // When each state first shows on the page, by the page's clock (the same wall clock as ours).
        await page.evaluate(`(() => {
        window.__seen = {}
        const note = () => { const el = document.querySelector('[data-ref="root"]'); if (el !== null && window.__seen[el.dataset.state] === undefined) window.__seen[el.dataset.state] = Date.now() }
        new MutationObserver(note).observe(document.body, { subtree: true, childList: true, attributes: true })
        note()
      })()`)
        return page
      })
    )
    const seen = async (page: (typeof pages)[number], state: number): Promise<number | undefined> =>
      (await page.evaluate(`window.__seen[${JSON.stringify(String(state))}]`)) as number | undefined
    await waitFor(
      'state 0 on every page',
      async () => (await Promise.all(pages.map(async (p) => await seen(p, 0)))).every((t) => t !== undefined),
      30_000
    )
    const api = [1, 2].map((i) => AdminClient.fromDataDir(new DataDir(datadir(i))))
    /** When node `i` applied state `state` of the root pool, by its clock. */
    const appliedAt = async (i: number, state: number): Promise<number | undefined> => {
      const s = await api[i].get<{
        entries: Array<{ atMs: number; pool: string | null; state: number | null; outcome: string }>
      }>('/v1/dashboard/snapshot')
      return s.entries.find((e) => e.pool === 'root' && e.state === state && e.outcome === 'accepted')?.atMs
    }
    const own: number[] = []
    const other: number[] = []
    const endToEnd: number[] = []
    for (let i = 1; i <= payments; i++) {
      const requestMs = Date.now()
      const r = await api[0].post<{ state: number }>(
        '/v1/pool/pay',
        { to: 'node2', amountSats: 1 },
        { timeoutMs: 30_000 }
      )
      const [t1, t2] = await waitFor(
        `state ${r.state} on the pages`,
        async () => {
          const t = await Promise.all([seen(pages[0], r.state), seen(pages[1], r.state)])
          return t.every((x) => x !== undefined) ? (t as number[]) : undefined
        },
        10_000,
        20
      )
      const [a1, a2] = await waitFor('the applied times', async () => {
        const a = await Promise.all([appliedAt(0, r.state), appliedAt(1, r.state)])
        return a.every((x) => x !== undefined) ? (a as number[]) : undefined
      })
      own.push(t1 - a1)
      other.push(t2 - a2)
      endToEnd.push(t2 - requestMs)
      process.stderr.write(
        `\rpayment ${i}/${payments}: applied -> page ${t1 - a1} ms (payer), ${t2 - a2} ms (node2); request -> node2's page ${t2 - requestMs} ms   `
      )
    }
    process.stderr.write('\n')
    // a stopped node: from SIGTERM's return (the process is gone) to its page saying so
    const stoppedAtMs = Date.now()
    await poolboard(['cluster', 'stop', '3', '--dir', dir])
    const goneMs = Date.now()
    await waitFor(
      "node3's page to say unreachable",
      async () => /^node unreachable/.test((await pages[2].locator('[data-test="reachability"]').textContent()) ?? ''),
      30_000,
      20
    )
    const unreachableMs = Date.now() - goneMs
    const rows = [
      { what: 'applied on the payer -> its page', s: summarize(own) },
      { what: 'applied on another member -> its page', s: summarize(other) },
      { what: "payment request -> another member's page", s: summarize(endToEnd) }
    ]
    process.stdout.write(
      `\nchange to page: the new state in the page's DOM (${payments} payments, 3 nodes, each page open in Chromium; goal: under ${GOAL_MS} ms)\n`
    )
    process.stdout.write(
      renderTable(
        ['change', 'count', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'goal ms'],
        rows.map((r) => [
          r.what,
          String(r.s.count),
          fmt(r.s.p50, 0),
          fmt(r.s.p90, 0),
          fmt(r.s.p99, 0),
          fmt(r.s.max, 0),
          String(GOAL_MS)
        ]),
        { alignRight: [1, 2, 3, 4, 5, 6] }
      ) + '\n'
    )
    process.stdout.write(
      `node stopped -> its page says unreachable: ${unreachableMs} ms after the process was gone (${goneMs - stoppedAtMs} ms to stop it)\n`
    )
    process.stdout.write(
      `results: ${writeResult('dashboard', { payments, goalMs: GOAL_MS, payerPage: rows[0].s, otherPage: rows[1].s, endToEnd: rows[2].s, unreachableMs })}\n`
    )
  } finally {
    await browser.close().catch(() => undefined)
    await poolboard(['cluster', 'down', '--dir', dir]).catch(() => undefined)
    rmSync(base, { recursive: true, force: true })
  }
}
