import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Agent } from 'node:http'
import { countsOption, fmt, numberOption, rssMiB, summarize, writeResult, type Summary } from './lib.js'
import { CLUSTER_LOAD_OPTIONS, closedLoop, payloadMaker, post, type LoadResult, type Target } from './load.js'
import { renderTable } from '../daemon/host/table.js'
import { sleep, waitFor } from '../daemon/host/wait.js'
import { Level } from 'level'
import { PromiseFile } from '../storage/promise-file.js'

const CLI = fileURLToPath(new URL('../daemon/cli.js', import.meta.url))

export async function poolboard(args: string[]): Promise<string> {
  return await new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, ...args], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`poolboard ${args.join(' ')}: ${stderr.trim()}`))
      else resolve(stdout)
    })
  })
}

interface ClusterNode {
  index: number
  pid: number | null
  running: boolean
  datadir: string
  api: string
}

/** A lab cluster of board nodes in a temporary directory, driven over the admin API. */
export class BenchCluster {
  readonly base = mkdtempSync(join(tmpdir(), 'poolboard-bench-'))
  readonly dir = join(this.base, 'cluster')

  static async up(nodes: number, extra: string[] = []): Promise<BenchCluster> {
    const c = new BenchCluster()
    try {
      await poolboard(['cluster', 'up', '--nodes', String(nodes), '--lab', '--dir', c.dir, '--json', ...extra])
    } catch (err) {
      // A half-started cluster: stop what did start and remove the temporary directory.
      await c.down()
      throw err
    }
    return c
  }

  async nodes(): Promise<ClusterNode[]> {
    return (JSON.parse(await poolboard(['cluster', 'status', '--dir', this.dir, '--json'])) as { nodes: ClusterNode[] })
      .nodes
  }

  target(node: ClusterNode, bodyOf: () => string): Target {
    const cookie = readFileSync(join(node.datadir, '.cookie'), 'utf8').trim()
    const [host, port] = node.api.split(':')
    return {
      host,
      port: Number(port),
      path: '/v1/board/entries',
      headers: { authorization: 'Basic ' + Buffer.from(cookie).toString('base64') },
      body: bodyOf
    }
  }

  async boardStatus(node: ClusterNode): Promise<{ role: string; applied: number; commit: number } | undefined> {
    try {
      const cookie = readFileSync(join(node.datadir, '.cookie'), 'utf8').trim()
      const res = await fetch(`http://${node.api}/v1/board/status`, {
        headers: { authorization: 'Basic ' + Buffer.from(cookie).toString('base64') },
        signal: AbortSignal.timeout(2_000)
      })
      return res.ok ? ((await res.json()) as { role: string; applied: number; commit: number }) : undefined
    } catch {
      return undefined
    }
  }

  async leader(timeoutMs = 30_000): Promise<ClusterNode> {
    return await waitFor(
      'a board leader',
      async () => {
        for (const n of await this.nodes()) if (n.running && (await this.boardStatus(n))?.role === 'leader') return n
        return undefined
      },
      timeoutMs,
      50
    )
  }

  async waitApplied(node: ClusterNode, index: number, timeoutMs: number): Promise<void> {
    await waitFor(
      `node ${node.index} to apply ${index}`,
      async () => ((await this.boardStatus(node))?.applied ?? 0) >= index,
      timeoutMs,
      20
    )
  }

  async down(): Promise<void> {
    await poolboard(['cluster', 'down', '--dir', this.dir]).catch(() => undefined)
    rmSync(this.base, { recursive: true, force: true })
  }
}

export function rawEntryBody(bytes: number): () => string {
  const make = payloadMaker(bytes)
  return () => JSON.stringify({ data: make().toString('base64') })
}

/** Time from SIGKILL of the leader to the next acknowledged append, through any surviving node. */
async function failoverMs(cluster: BenchCluster, body: () => string): Promise<number> {
  const leader = await cluster.leader()
  const others = (await cluster.nodes()).filter((n) => n.running && n.index !== leader.index)
  const targets = others.map((n) => cluster.target(n, body))
  const agent = new Agent({ keepAlive: true })
  process.kill(leader.pid!, 'SIGKILL')
  const t0 = performance.now()
  for (let attempt = 0; attempt < 100_000; attempt++) {
    const statuses = await Promise.all(targets.map(async (t) => await post(t, agent)))
    if (statuses.some((s) => s >= 200 && s < 300)) {
      agent.destroy()
      const elapsed = performance.now() - t0
      await poolboard(['cluster', 'start', String(leader.index), '--dir', cluster.dir])
      return elapsed
    }
    await sleep(5)
  }
  throw new Error('no append succeeded after killing the leader')
}

interface SizeResult {
  nodes: number
  load: LoadResult[]
  failoverMs: Summary
  catchUp?: { entries: number; seconds: number; entriesPerS: number }
  rssMiB: number[]
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...CLUSTER_LOAD_OPTIONS,
      'catchup-entries': { type: 'string', default: '100000' },
      'promise-writes': { type: 'string', default: '2000' },
      'promise-only': { type: 'boolean', default: false }
    }
  })
  const promiseWrites = numberOption('promise-writes', values['promise-writes'], { integer: true })
  const promise = promiseWrites > 0 ? await measurePromiseRecord(promiseWrites) : undefined
  if (values['promise-only']) {
    if (promise !== undefined) process.stdout.write(`\nresults: ${writeResult('board-promise', { promise })}\n`)
    return
  }
  const sizes = countsOption('sizes', values.sizes)
  const clientCounts = countsOption('clients', values.clients)
  const durationMs = numberOption('duration-s', values['duration-s'], { min: 0.1 }) * 1000
  const body = rawEntryBody(numberOption('value-bytes', values['value-bytes'], { integer: true }))
  const failoverCount = numberOption('failovers', values.failovers, { integer: true })
  const catchupEntries = numberOption('catchup-entries', values['catchup-entries'], { integer: true })
  const results: SizeResult[] = []

  for (const size of sizes) {
    const cluster = await BenchCluster.up(size)
    try {
      process.stderr.write(`\n${size} nodes\n`)
      const load: LoadResult[] = []
      for (const clients of clientCounts) {
        const leader = await cluster.leader()
        process.stderr.write(`  ${clients} clients for ${durationMs / 1000} s ... `)
        const r = await closedLoop(cluster.target(leader, body), clients, durationMs)
        load.push(r)
        process.stderr.write(
          `${fmt(r.throughputPerS, 0)} appends/s, p50 ${fmt(r.latencyMs.p50, 2)} ms, p99 ${fmt(r.latencyMs.p99, 2)} ms\n`
        )
      }
      const failovers: number[] = []
      for (let i = 0; i < failoverCount; i++) {
        const ms = await failoverMs(cluster, body)
        failovers.push(ms)
        process.stderr.write(`  failover ${i + 1}: ${fmt(ms, 0)} ms from SIGKILL of the leader to the next commit\n`)
      }
      let catchUp: SizeResult['catchUp']
      if (catchupEntries > 0 && size === sizes[sizes.length - 1])
        catchUp = await measureCatchUp(cluster, catchupEntries, body)
      const rss = (await cluster.nodes()).filter((n) => n.pid !== null).map((n) => rssMiB(n.pid!))
      results.push({ nodes: size, load, failoverMs: summarize(failovers), catchUp, rssMiB: rss })
    } finally {
      await cluster.down()
    }
  }

  process.stdout.write(
    '\nboard appends over the admin API (closed loop, synced writes, ' + values['value-bytes'] + '-byte entries)\n'
  )
  process.stdout.write(
    renderTable(
      ['nodes', 'clients', 'appends/s', 'p50 ms', 'p99 ms', 'errors'],
      results.flatMap((r) =>
        r.load.map((l) => [
          String(r.nodes),
          String(l.clients),
          fmt(l.throughputPerS, 0),
          fmt(l.latencyMs.p50, 2),
          fmt(l.latencyMs.p99, 2),
          String(l.errors)
        ])
      ),
      { alignRight: [0, 1, 2, 3, 4, 5] }
    ) + '\n\n'
  )
  process.stdout.write(
    renderTable(
      ['nodes', 'failover p50 ms', 'failover max ms', 'catch-up entries', 'catch-up s', 'RSS per node MiB'],
      results.map((r) => [
        String(r.nodes),
        fmt(r.failoverMs.p50, 0),
        fmt(r.failoverMs.max, 0),
        r.catchUp === undefined ? '-' : String(r.catchUp.entries),
        r.catchUp === undefined ? '-' : fmt(r.catchUp.seconds, 1),
        r.rssMiB.map((m) => fmt(m, 0)).join(' ')
      ]),
      { alignRight: [0, 1, 2, 3, 4] }
    ) + '\n'
  )
  process.stdout.write(`results: ${writeResult('board', { sizes, clientCounts, durationMs, results, promise })}\n`)
}

/** Stops a follower, commits `entries` more, starts it, and times how long it takes to apply them all. */
/** One way of writing a Raft batch with its promise record (storage/promise-file.ts). */
type PromiseMode = 'batch alone' | 'batch + record synced (before)' | 'batch + record, synced on term/vote change (now)'

/**
 * The promise record's cost per Raft batch: `writes` synced LevelDB batches of one 256-byte entry
 * and a hard state, alone, with the record written and synced beside each (as it was), and with
 * the record written beside each and synced only when the term or vote changes (as it is: here
 * every 100th batch, an election every 100 batches being far more than a healthy board has).
 */
async function measurePromiseRecord(writes: number): Promise<Record<PromiseMode, Summary & { perS: number }>> {
  const dir = mkdtempSync(join(tmpdir(), 'poolboard-bench-promise-'))
  const out = {} as Record<PromiseMode, Summary & { perS: number }>
  try {
    const db = new Level<Uint8Array, Uint8Array>(join(dir, 'db'), { keyEncoding: 'view', valueEncoding: 'view' })
    await db.open()
    const { file } = await PromiseFile.open(join(dir, 'board-promise'))
    const value = new Uint8Array(256).fill(7)
    const hash = new Uint8Array(32)
    let index = 0
    const modes: PromiseMode[] = [
      'batch alone',
      'batch + record synced (before)',
      'batch + record, synced on term/vote change (now)'
    ]
    process.stderr.write(`\npromise record: ${writes} synced batches each way\n`)
    for (const mode of modes) {
      const ms: number[] = []
      const t0 = performance.now()
      for (let i = 0; i < writes; i++) {
        index++
        const key = new Uint8Array(9)
        new DataView(key.buffer).setBigUint64(1, BigInt(index))
        const start = performance.now()
        const batch = db.batch(
          [
            { type: 'put', key, value },
            { type: 'put', key: Uint8Array.of(0), value: key }
          ],
          { sync: true }
        )
        const term = Math.floor(index / 100)
        const record =
          mode === 'batch alone'
            ? undefined
            : file.write({ term, vote: null, lastIndex: index, lastHash: hash }, mode === modes[1] || index % 100 === 0)
        await Promise.all([batch, record])
        ms.push(performance.now() - start)
      }
      const perS = writes / ((performance.now() - t0) / 1000)
      out[mode] = { ...summarize(ms), perS }
      process.stderr.write(`  ${mode}: ${fmt(perS, 0)} batches/s, p50 ${fmt(out[mode].p50, 3)} ms\n`)
    }
    await file.close()
    await db.close()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  process.stdout.write(
    '\npromise record (storage/promise-file.ts) per synced Raft batch; goal: no extra fsync per append\n' +
      renderTable(
        ['writes', 'batches/s', 'p50 ms', 'p99 ms'],
        Object.entries(out).map(([mode, r]) => [mode, fmt(r.perS, 0), fmt(r.p50, 3), fmt(r.p99, 3)]),
        { alignRight: [1, 2, 3] }
      ) +
      '\n'
  )
  return out
}

async function measureCatchUp(
  cluster: BenchCluster,
  entries: number,
  body: () => string
): Promise<SizeResult['catchUp']> {
  const leader = await cluster.leader()
  const follower = (await cluster.nodes()).find((n) => n.running && n.index !== leader.index)!
  await poolboard(['cluster', 'stop', String(follower.index), '--dir', cluster.dir])
  process.stderr.write(`  catch-up: committing ${entries} entries while node ${follower.index} is stopped ...\n`)
  const target = cluster.target(leader, body)
  const agent = new Agent({ keepAlive: true, maxSockets: 64 })
  let sent = 0
  let done = 0
  const worker = async (): Promise<void> => {
    while (sent < entries) {
      sent++
      if ((await post(target, agent)) === 200) done++
      else sent--
      if (done % 10_000 === 0) process.stderr.write(`\r    ${done}/${entries}`)
    }
  }
  await Promise.all(Array.from({ length: 64 }, worker))
  agent.destroy()
  const commit = (await cluster.boardStatus(leader))!.commit
  process.stderr.write(`\n  catch-up: starting node ${follower.index}, ${commit} entries on the board\n`)
  const t0 = performance.now()
  await poolboard(['cluster', 'start', String(follower.index), '--dir', cluster.dir])
  const restarted = (await cluster.nodes()).find((n) => n.index === follower.index)!
  await cluster.waitApplied(restarted, commit, 600_000)
  const seconds = (performance.now() - t0) / 1000
  process.stderr.write(`  catch-up: ${fmt(seconds, 1)} s\n`)
  return { entries, seconds, entriesPerS: entries / seconds }
}
