import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { LocalCluster } from '../daemon/cluster/index.js'
import { ensureClusterPool } from '../daemon/cluster/pool.js'
import { AdminClient } from '../daemon/api/client.js'
import { Progress, renderTable } from '../daemon/host/table.js'
import { sleep, waitFor } from '../daemon/host/wait.js'
import { countsOption, cpuSeconds, fmt, numberOption, rssMiB, summarize, writeResult, type Summary } from './lib.js'

/**
 * `npm run bench -- scale`: pools of many members.
 *
 * For each size (`--nodes 16,32,64`, 5 voters, the rest learners) on real node processes: time to
 * every node connected, time to the pool created (every member signed state 0), idle CPU and RSS
 * per node, payment latency with every member online, then with 3/8 of the nodes stopped the
 * latency of partitions among the others (each nested in the previous one), and after restarting
 * them, that every node shows the same pool and the sum is conserved.
 *
 * Then the 1,000-member simulation (test/sim/pool-scale.ts) unless `--skip-sim`.
 */

/** Goals from the issue of pools of many members (64 real nodes on this 2-core machine). */
const GOAL_POOL_CREATED_S = 60
const GOAL_IDLE_CPU_PCT = 0.3
const GOAL_IDLE_RSS_MIB = 80
const VOTERS = 5
const BALANCE_SATS = 100_000

interface SizeResult {
  nodes: number
  connectedS: number
  poolCreatedS: number
  idleCpuPct: Summary
  idleRssMiB: Summary
  paymentMs: Summary
  stopped: number
  partitionActives: number
  partitionMs: Summary
  agreedAfterRestartS: number
  conserved: boolean
}

interface PoolStatusLite {
  poolId: string | null
  state: number | null
  totalSats: number
  balances: Record<string, number>
  onChain: Record<string, number>
  partitions: Array<{ ref: string; state: number }>
}

function client(c: LocalCluster, index: number): AdminClient {
  return AdminClient.fromDataDir(c.dataDir(index))
}

async function idleCost(
  c: LocalCluster,
  indexes: number[],
  idleS: number
): Promise<{ cpuPct: number[]; rss: number[] }> {
  const pids = indexes.map((i) => c.runningPid(i)).filter((p): p is number => p !== undefined)
  const before = pids.map(cpuSeconds)
  const t0 = performance.now()
  await sleep(idleS * 1000)
  const seconds = (performance.now() - t0) / 1000
  const cpuPct = pids.map((p, k) => ((cpuSeconds(p) - before[k]) / seconds) * 100)
  return { cpuPct, rss: pids.map(rssMiB) }
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now()
  await fn()
  return performance.now() - t0
}

/** Every node in `indexes` shows the same pool (state, balances, partitions); returns that status. */
async function waitAgreed(
  c: LocalCluster,
  indexes: number[],
  what: string,
  check: (s: PoolStatusLite) => boolean,
  timeoutMs: number
): Promise<PoolStatusLite> {
  return await waitFor(
    `nodes to agree (${what})`,
    async () => {
      const all = await Promise.all(
        indexes.map(
          async (i) =>
            await client(c, i)
              .get<PoolStatusLite>('/v1/pool/status?fresh=1', { timeoutMs: 10_000 })
              .catch(() => null)
        )
      )
      if (all.some((s) => s === null)) return undefined
      const key = (s: PoolStatusLite): string =>
        JSON.stringify({ p: s.poolId, s: s.state, b: s.balances, o: s.onChain, t: s.partitions })
      const first = key(all[0]!)
      return all.every((s) => key(s!) === first) && check(all[0]!) ? all[0]! : undefined
    },
    timeoutMs,
    500
  )
}

async function runSize(
  nodes: number,
  options: { payments: number; partitions: number; idleS: number }
): Promise<SizeResult> {
  const base = mkdtempSync(join(tmpdir(), 'poolboard-scale-'))
  const c = new LocalCluster(join(base, 'cluster'), new Progress(false))
  const log = (text: string): void => {
    process.stderr.write(`${nodes} nodes: ${text}\n`)
  }
  try {
    await c.create({ nodes, lab: false, voters: Math.min(VOTERS, nodes), settings: { 'block-interval-s': '0' } })
    const all = c.indexes()
    const deadlineMs = Date.now() + 300_000
    const t0 = performance.now()
    await c.startInWaves(all, deadlineMs)
    await c.waitConnected(deadlineMs, 'connecting')
    const connectedS = (performance.now() - t0) / 1000
    log(`connected in ${fmt(connectedS)} s`)
    await ensureClusterPool(c, {
      balanceSats: String(BALANCE_SATS),
      kickoutDelayBlocks: 144,
      deadlineMs,
      progress: new Progress(false)
    })
    const poolCreatedS = (performance.now() - t0) / 1000
    log(`pool created in ${fmt(poolCreatedS)} s`)
    await sleep(5_000) // let start-up work (catch-up, gossip mesh) settle before measuring idle
    const idle = await idleCost(c, all, options.idleS)
    log(`idle CPU p50 ${fmt(summarize(idle.cpuPct).p50, 2)} % of a core, RSS p50 ${fmt(summarize(idle.rss).p50)} MiB`)

    // Payments with every member online: a learner pays a voter, and back.
    const paymentMs: number[] = []
    for (let k = 0; k < options.payments; k++) {
      const from = k % 2 === 0 ? nodes : 1
      const to = k % 2 === 0 ? 'node1' : `node${nodes}`
      paymentMs.push(
        await timed(
          async () => await client(c, from).post('/v1/pool/pay', { to, amountSats: 100 }, { timeoutMs: 120_000 })
        )
      )
    }
    await waitAgreed(c, all, `state ${options.payments}`, (s) => s.state === options.payments, 120_000)
    log(`payments p50 ${fmt(summarize(paymentMs).p50, 0)} ms`)

    // 3/8 of the members stop; the others partition among themselves, again and again (nested).
    const stopped = all.slice(all.length - Math.round((nodes * 3) / 8))
    const online = all.filter((i) => !stopped.includes(i))
    for (const i of stopped) await c.signalNode(i, 'SIGTERM')
    const partitionMs: number[] = []
    for (let k = 0; k < options.partitions; k++) {
      partitionMs.push(
        await timed(
          async () =>
            await client(c, 1).post(
              '/v1/pool/partition',
              { with: online.slice(1).map((i) => `node${i}`) },
              { timeoutMs: 120_000 }
            )
        )
      )
    }
    log(`partitions among ${online.length}: p50 ${fmt(summarize(partitionMs).p50, 0)} ms`)

    // They come back: every node shows the same pool, and the sum is what the pool was made with.
    const t1 = performance.now()
    await c.startInWaves(stopped, Date.now() + 300_000)
    const agreed = await waitAgreed(c, all, 'after restart', (s) => s.partitions.length === options.partitions, 300_000)
    const agreedAfterRestartS = (performance.now() - t1) / 1000
    const held =
      Object.values(agreed.balances).reduce((a, b) => a + b, 0) +
      Object.values(agreed.onChain).reduce((a, b) => a + b, 0)
    const conserved = held === nodes * BALANCE_SATS && agreed.totalSats === nodes * BALANCE_SATS
    log(`all ${nodes} agree ${fmt(agreedAfterRestartS)} s after restart; conserved: ${conserved}`)
    return {
      nodes,
      connectedS,
      poolCreatedS,
      idleCpuPct: summarize(idle.cpuPct),
      idleRssMiB: summarize(idle.rss),
      paymentMs: summarize(paymentMs),
      stopped: stopped.length,
      partitionActives: online.length,
      partitionMs: summarize(partitionMs),
      agreedAfterRestartS,
      conserved
    }
  } finally {
    for (const i of c.exists() ? c.indexes() : [])
      await c.signalNode(i, 'SIGTERM').catch(() => {
        c.killAllNow()
      })
    if (existsSync(base)) rmSync(base, { recursive: true, force: true })
  }
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      nodes: { type: 'string', default: '16,32,64' },
      payments: { type: 'string', default: '10' },
      partitions: { type: 'string', default: '5' },
      'idle-s': { type: 'string', default: '20' },
      'skip-sim': { type: 'boolean', default: false },
      'sim-members': { type: 'string', default: '1000' },
      'sim-seed': { type: 'string', default: '1' }
    }
  })
  const sizes = countsOption('nodes', values.nodes)
  const payments = numberOption('payments', values.payments, { min: 1, integer: true })
  const partitions = numberOption('partitions', values.partitions, { min: 1, integer: true })
  const idleS = numberOption('idle-s', values['idle-s'], { min: 1 })
  const simMembers = numberOption('sim-members', values['sim-members'], { min: 10, integer: true })
  const simSeed = numberOption('sim-seed', values['sim-seed'], { min: 0, integer: true })

  const results: SizeResult[] = []
  for (const n of sizes) results.push(await runSize(n, { payments, partitions, idleS }))

  if (results.length > 0) {
    process.stdout.write(
      `\nreal node processes on loopback (${VOTERS} voters, the others learners); goals for 64 nodes beside\n`
    )
    process.stdout.write(
      renderTable(
        [
          'nodes',
          'connected s',
          'pool created s',
          'goal s',
          'idle CPU p50 %',
          'idle CPU max %',
          'goal %',
          'RSS p50 MiB',
          'RSS max MiB',
          'goal MiB'
        ],
        results.map((r) => [
          String(r.nodes),
          fmt(r.connectedS),
          fmt(r.poolCreatedS),
          String(GOAL_POOL_CREATED_S),
          fmt(r.idleCpuPct.p50, 2),
          fmt(r.idleCpuPct.max, 2),
          String(GOAL_IDLE_CPU_PCT),
          fmt(r.idleRssMiB.p50),
          fmt(r.idleRssMiB.max),
          String(GOAL_IDLE_RSS_MIB)
        ]),
        { alignRight: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] }
      ) + '\n'
    )
    process.stdout.write(
      '\npayments (every member online) and partitions (3/8 of the nodes stopped, the rest active), admin API call on the proposer until accepted\n'
    )
    process.stdout.write(
      renderTable(
        [
          'nodes',
          'payments',
          'pay p50 ms',
          'pay p99 ms',
          'stopped',
          'actives',
          'partitions',
          'part p50 ms',
          'part p99 ms',
          'agreed after restart s',
          'sum conserved'
        ],
        results.map((r) => [
          String(r.nodes),
          String(r.paymentMs.count),
          fmt(r.paymentMs.p50, 0),
          fmt(r.paymentMs.p99, 0),
          String(r.stopped),
          String(r.partitionActives),
          String(r.partitionMs.count),
          fmt(r.partitionMs.p50, 0),
          fmt(r.partitionMs.p99, 0),
          fmt(r.agreedAfterRestartS),
          r.conserved ? 'yes' : 'NO'
        ]),
        { alignRight: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] }
      ) + '\n'
    )
  }

  let sim: unknown = null
  if (!values['skip-sim']) {
    // The simulator lives with the tests (test/sim/), run from its TypeScript source like `npm run sim`.
    process.stderr.write(`simulation: ${simMembers} members, seed ${simSeed} ...\n`)
    const script = fileURLToPath(new URL('../../test/sim/pool-scale.ts', import.meta.url))
    const out = execFileSync(
      process.execPath,
      ['--import', 'tsx', script, '--members', String(simMembers), '--seed', String(simSeed)],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 * 1024 * 1024 }
    )
    process.stdout.write('\n' + out)
    sim = JSON.parse(
      readFileSync(
        out
          .trim()
          .split('\n')
          .at(-1)!
          .replace(/^results: /, ''),
        'utf8'
      )
    )
  }
  process.stdout.write(`results: ${writeResult('scale', { sizes: results, sim })}\n`)
}
