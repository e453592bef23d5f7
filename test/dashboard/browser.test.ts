import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { TestCluster } from '../helpers/cluster.js'
import { screenshot, TestBrowser } from '../helpers/browser.js'
import { cli, cliJson, exitOf, killChild, runCli, spawnCli, tempDir, waitFor } from '../helpers/process.js'

/**
 * The dashboards in Chromium against real node processes (docs/dashboard.md): a node's own page
 * after `cluster up --pool`, live updates without a reload, the one-time link and its session
 * cookie, a stopped node shown unreachable and offline, the cluster page's cut link and commands.
 * The tests run in order and share one cluster.
 */
describe('dashboard in Chromium on 3 real nodes', function () {
  this.timeout(180_000)
  let cluster: TestCluster
  let browser: TestBrowser
  let clusterPage: ChildProcess | undefined
  const BALANCE = 100_000

  const link = async (node: number): Promise<string> =>
    (await cliJson<{ url: string }>(['dashboard', '--datadir', cluster.datadir(node), '--no-open'])).url
  const text = async (page: Page, selector: string): Promise<string> =>
    (await page.locator(selector).first().textContent()) ?? ''
  /** Polls the page's DOM (no reload) until `check` holds. */
  const until = async (_page: Page, what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> => {
    await waitFor(what, async () => await check().catch(() => false), timeoutMs)
  }

  before(async () => {
    cluster = await TestCluster.up(3, ['--pool', '--balance', String(BALANCE), '--set', 'block-interval-s=0'])
    browser = await TestBrowser.launch()
  })
  after(async () => {
    if (clusterPage !== undefined) {
      clusterPage.kill('SIGTERM')
      await killChild(clusterPage)
    }
    await browser?.close()
    await cluster?.destroy()
  })
  afterEach(() => {
    assert.deepEqual(browser.errors, [], 'no script error on any page')
  })

  it("a node's page shows this member, its balance, the members online, the board and the pool tree after cluster up --pool", async () => {
    const page = await browser.page()
    await page.goto(await link(1))
    await until(page, "the pool on node1's page", async () =>
      (await text(page, '[data-balance="node3"]')).includes('100,000 sats')
    )
    assert.equal(await text(page, '[data-test="node-name"]'), 'node1')
    assert.equal(await text(page, '[data-test="my-balance"]'), '100,000 sats')
    assert.match(await text(page, '[data-test="reachability"]'), /^live/)
    for (const n of ['node1', 'node2', 'node3'])
      assert.equal(await page.locator(`[data-member="${n}"]`).getAttribute('data-online'), 'true', `${n} online`)
    assert.match(await text(page, '[data-test="role"]'), /^(leader|follower)$/)
    assert.equal(await page.locator('[data-ref="root"]').getAttribute('data-state'), '0')
    await screenshot(page, 'dashboard-node.png')
    await page.close()
  })

  it('the link is good once; the session is an HttpOnly, SameSite=Strict cookie, and no URL holds the .cookie secret', async () => {
    const url = await link(2)
    const page = await browser.page()
    const seen: string[] = []
    page.on('request', (r) => {
      seen.push(r.url())
    })
    await page.goto(url)
    await until(page, "node2's page", async () => (await text(page, '[data-test="node-name"]')) === 'node2')
    assert.doesNotMatch(page.url(), /token=/, 'the token leaves the address bar once used')
    const cookies = await browser.context.cookies()
    const session = cookies.find((c) => c.name.startsWith('poolboard_node_'))
    assert.ok(session !== undefined, `a session cookie: ${JSON.stringify(cookies.map((c) => c.name))}`)
    assert.equal(session.httpOnly, true)
    assert.equal(session.sameSite, 'Strict')
    const secret = readFileSync(join(cluster.datadir(2), '.cookie'), 'utf8')
      .trim()
      .split(':')
      .pop()!
    for (const u of seen) assert.ok(!u.includes(secret), `no URL holds the cookie secret: ${u}`)
    // A second browser with the same (used) link gets nothing.
    const other = await TestBrowser.launch()
    try {
      const p2 = await other.page()
      const r = await p2.goto(url)
      assert.equal(r?.status(), 401)
      assert.match((await p2.locator('body').textContent()) ?? '', /used or expired/)
      const events = await p2.goto(url.replace(/login\?token=.*/, 'events'))
      assert.equal(events?.status(), 401, 'no stream without a session')
    } finally {
      await other.close()
    }
    await page.close()
  })

  it("a payment appears on another node's page without a reload, with the round on the payer's page", async () => {
    const payee = await browser.page()
    const payer = await browser.page()
    await payee.goto(await link(2))
    await payer.goto(await link(1))
    await until(payee, "node2's page", async () => (await text(payee, '[data-balance="node2"]')).includes('100,000'))
    await until(payer, "node1's page", async () => (await text(payer, '[data-balance="node1"]')).includes('100,000'))
    let navigations = 0
    payee.on('framenavigated', () => {
      navigations++
    })
    await cli(['pool', 'pay', '--datadir', cluster.datadir(1), '--to', 'node2', '--amount', '1500'])
    await until(
      payee,
      "the payment on node2's page",
      async () => (await text(payee, '[data-test="my-balance"]')) === '101,500 sats'
    )
    assert.equal(await payee.locator('[data-ref="root"]').getAttribute('data-state'), '1')
    assert.equal(navigations, 0, 'the page was not reloaded')
    await until(payer, "the round on node1's page", async () =>
      /pay 1500 sats to node2\s*ok/.test(await text(payer, '[data-test="rounds"]'))
    )
    await screenshot(payer, 'dashboard-payment.png')
    await payee.close()
    await payer.close()
  })

  it('the cluster page shows every node side by side; a cut link and a stopped node are visible; its commands need the CSRF token', async () => {
    clusterPage = spawnCli(['dashboard', '--dir', cluster.dir, '--no-open', '--json'])
    let out = ''
    clusterPage.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
    })
    const { url } = await waitFor("the cluster page's link", () => {
      try {
        return JSON.parse(out) as { url: string }
      } catch {
        return undefined
      }
    })
    const page = await browser.page()
    await page.goto(url)
    const state = async (name: string): Promise<string | null> =>
      await page.locator(`.card[data-name="${name}"]`).getAttribute('data-state')
    await until(page, 'three running nodes', async () =>
      (await Promise.all(['node1', 'node2', 'node3'].map(state))).every((s) => s === 'running')
    )
    assert.equal(await page.locator('[data-link="node1-node2"]').getAttribute('data-up'), 'true')

    // cut node2 from the page's button: its links go down, the card says so
    await page.locator('.card[data-name="node2"] button', { hasText: 'cut' }).click()
    await until(
      page,
      'node2 cut off',
      async () =>
        (await state('node2')) === 'cut' &&
        (await page.locator('[data-link="node1-node2"]').getAttribute('data-up')) === 'false'
    )
    assert.equal(
      await page.locator('[data-link="node1-node3"]').getAttribute('data-up'),
      'true',
      'the other link stays up'
    )
    await screenshot(page, 'dashboard-cluster-cut.png')
    await page.locator('.card[data-name="node2"] button', { hasText: 'heal' }).click()
    await until(
      page,
      'node2 healed',
      async () => (await page.locator('[data-link="node1-node2"]').getAttribute('data-up')) === 'true',
      30_000
    )

    // an action without the page's CSRF token is refused
    const forged = await page.evaluate(
      async () =>
        (
          await fetch('action/stop', {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: '{"node":3}'
          })
        ).status
    )
    assert.equal(forged, 403)

    // node3 stopped with the CLI: offline on the cluster page, unreachable on its own page
    const own = await browser.page()
    await own.goto(await link(3))
    await until(own, "node3's page live", async () => /^live/.test(await text(own, '[data-test="reachability"]')))
    await cluster.run('stop', '3')
    await until(
      page,
      'node3 offline on the cluster page',
      async () =>
        (await state('node3')) === 'stopped' && /offline: stopped/.test(await text(page, '.card[data-name="node3"]'))
    )
    await until(own, "node3's own page says unreachable", async () =>
      /^node unreachable/.test(await text(own, '[data-test="reachability"]'))
    )
    await own.close()

    // with node3 offline, node1 and node2 partition: the tree shows the partition under the root, frozen
    await cli(['pool', 'partition', '--datadir', cluster.datadir(1), '--with', 'node2'])
    const node1 = page.locator('.card[data-name="node1"]')
    await until(
      page,
      'the partition on the cluster page',
      async () => (await node1.locator('[data-ref^="partition/"]').count()) === 1
    )
    assert.match((await node1.locator('[data-ref="root"] > .pool-head').textContent()) ?? '', /frozen/)
    assert.match(
      (await node1.locator('[data-ref^="partition/"] [data-balance="node2"]').textContent()) ?? '',
      /101,500 sats/
    )
    await screenshot(page, 'dashboard-cluster-stopped.png')

    // and started again from the page
    await page.locator('.card[data-name="node3"] button', { hasText: 'start' }).click()
    await until(page, 'node3 running again', async () => (await state('node3')) === 'running', 60_000)
    await page.close()
    clusterPage.kill('SIGTERM')
    assert.equal(await exitOf(clusterPage), 0, 'the cluster page stops cleanly on SIGTERM')
    clusterPage = undefined
  })
})

describe('lab watch page in Chromium (coalition drop on 4 real nodes)', function () {
  this.timeout(240_000)
  let browser: TestBrowser
  let lab: ChildProcess | undefined
  const temp = tempDir('poolboard-watch-')
  after(async () => {
    if (lab !== undefined) {
      lab.kill('SIGINT')
      await killChild(lab)
    }
    await browser?.close()
    // a run cut short leaves its cluster: kill it before removing the directory
    await runCli(['cluster', 'down', '--dir', join(temp.path, 'out', 'clusters', 'run-0001')]).catch(() => undefined)
    temp.cleanup()
  })

  it("shows the cast, each node's board and hash, the dropped statement, C's catch-up, the alarms, and ends on the verdict", async () => {
    browser = await TestBrowser.launch()
    lab = spawnCli([
      'lab',
      'coalition-drop',
      '--members',
      '4',
      '--coalition',
      '1',
      '--defenses',
      'all',
      '--runs',
      '1',
      '--seed',
      '11',
      '--out',
      join(temp.path, 'out'),
      '--watch',
      '--no-open'
    ])
    let err = ''
    lab.stderr!.on('data', (d: Buffer) => {
      err += d.toString()
    })
    const url = await waitFor('the watch link', () => /watch the campaign at (\S+)/.exec(err)?.[1])
    const page = await browser.page()
    await page.goto(url)
    const text = async (selector: string): Promise<string> =>
      (await page
        .locator(selector)
        .first()
        .textContent()
        .catch(() => null)) ?? ''
    await waitFor('the cast', async () => /A \(equivocator\)node\d/.test(await text('[data-test="cast"]')), 60_000)
    const hashes = async (): Promise<string[]> =>
      (await page.locator('[data-test="nodes"] .hash').allTextContents()).filter((h) => /^[0-9a-f]{12}$/.test(h))
    await waitFor(
      'four nodes with their boards',
      async () => (await page.locator('[data-test="nodes"] tbody tr').count()) === 4 && (await hashes()).length >= 2,
      60_000
    )
    await waitFor(
      'S1 on the page',
      async () => /statement [0-9a-f]{16} at board index \d+/.test(await text('[data-test="s1"]')),
      90_000
    )
    await waitFor('C caught up', async () => (await text('[data-test="caught-up"]')) === 'yes', 90_000)
    await waitFor(
      'the verdict',
      async () => (await page.locator('[data-test="verdict"][data-fooled]').count()) === 1,
      120_000
    )
    await waitFor(
      'the end of the campaign',
      async () => (await page.locator('[data-test="done"]').count()) === 1,
      60_000
    )
    const verdict = await text('[data-test="verdict"]')
    assert.match(verdict, /C was not fooled/, 'with every defense on, one coalition member cannot fool C')
    assert.match(verdict, /detected by node\d \(/, 'and a defense said so')
    assert.ok((await page.locator('[data-test="nodes"] [data-defense]').count()) > 0, 'the alarms are listed by node')
    assert.match(await text('[data-test="steps"]'), /S1 dropped[\s\S]*C caught up[\s\S]*S2 answered/)
    await screenshot(page, 'dashboard-lab-watch.png')
    // the report, served by the watch page once the campaign is over
    const report = await browser.page()
    const answer = await report.goto(
      new URL((await page.locator('[data-test="report-link"]').getAttribute('href')) ?? '', page.url()).href
    )
    assert.equal(answer?.status(), 200)
    assert.deepEqual(await report.locator('.legend-entry').allTextContents(), ['all'])
    assert.match((await report.locator('.chart-title').textContent()) ?? '', /: 1 run, 4 members, n = 1 run per bar/)
    assert.deepEqual(browser.errors, [])
    lab.kill('SIGINT')
    assert.equal(await exitOf(lab), 0)
    lab = undefined
  })
})
