import { execFileSync } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { Agent } from 'node:http'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { encodeGenesisEntry, encodeStatementEntry } from '../board/entries.js'
import { PoolBoard } from '../board/pool-board.js'
import { makeEntry, ZERO_HASH } from '../board/raft/index.js'
import { SignatureCache } from '../board/signature-cache.js'
import {
  buildPartitionStatement,
  initialState,
  makeGenesis,
  partitionInitialState,
  publicKeyOf,
  secretKeyFromSeed,
  signHash,
  signStatement,
  stateHash,
  verifyHash,
  withStatementSignature,
  type PoolState
} from '../protocol/index.js'
import { sleep } from '../daemon/host/wait.js'
import { LocalCluster } from '../daemon/cluster/index.js'
import { Progress, renderTable } from '../daemon/host/table.js'
import { VERSION } from '../daemon/host/version.js'
import { BenchCluster, poolboard, rawEntryBody } from './board.js'
import { ensureEtcd, EtcdCluster, killAllEtcdNow } from './etcd.js'
import {
  UsageError,
  countsOption,
  fmt,
  numberOption,
  percentile,
  summarize,
  withBudget,
  writeResult,
  type Budget,
  type Summary
} from './lib.js'
import { CLUSTER_LOAD_OPTIONS, closedLoopEach, post, type LoadResult, type Target } from './load.js'

/**
 * `npm run bench -- compare-etcd`: the board side by side with etcd.
 *
 * For each cluster size (3 and 5 members on loopback, both with their default durability: every
 * acknowledged write is synced to disk on a quorum), the same closed-loop HTTP load drives an etcd
 * cluster (`POST /v3/kv/put` on its gRPC gateway, distinct keys) and a poolboard cluster in lab mode
 * (`POST /v1/board/entries`), always on the leader, at 1, 16 and 64 clients. Then the time from
 * SIGKILL of the leader to the next acknowledged write, for both, a few times (the killed member is
 * started again and caught up in between).
 *
 * `--entries statements` adds a third load on the same poolboard cluster: complete partition
 * statements of a pool, pre-signed, so that every node verifies their BIP340 signatures as it
 * applies them. The pool is a genesis of many members split into disjoint chains (by default pairs
 * of members); the first statement of a chain partitions the root pool among its members, each next
 * one partitions the sub-pool the previous one made among the same members. Statements of one chain
 * must commit in order, so each chain is in flight on at most one client at a time; chains are
 * independent of each other, so all statements are accepted. After each run the committed log is
 * read back and applied to a local board to count the statements accepted.
 */

type Say = (line: string) => void
const say: Say = (line) => {
  process.stderr.write(line + '\n')
}

const FAILOVER_TIMEOUT_MS = 60_000
const FAILOVER_PROBE_INTERVAL_MS = 5
/**
 * Writes a prober may have unanswered. etcd holds a write that a follower forwarded to the dead
 * leader until its request timeout (7 s with the default election timeout), so the prober must
 * not wait for those before it tries again.
 */
const FAILOVER_MAX_OUTSTANDING = 4_000
const STATEMENT_MEMBERS_MAX = 256

// ---- clean-up on every exit path ----

interface Resource {
  name: string
  release: () => Promise<void>
  emergency: () => void
  running?: Promise<void>
}

/** Things to undo, newest first, whether the run ends, fails, is interrupted or runs out of time. */
class Resources {
  private readonly items: Resource[] = []

  /** Registers a clean-up; the returned function runs it (at most once, whoever asks first). */
  add(name: string, release: () => Promise<void>, emergency: () => void): () => Promise<void> {
    const item: Resource = { name, release, emergency }
    this.items.push(item)
    return async () => {
      await this.run(item)
    }
  }

  private async run(item: Resource): Promise<void> {
    item.running ??= item.release().finally(() => {
      const i = this.items.indexOf(item)
      if (i >= 0) this.items.splice(i, 1)
    })
    await item.running
  }

  /** Runs every clean-up not yet done, and waits for those already under way. */
  async releaseAll(): Promise<void> {
    while (this.items.length > 0) {
      const item = this.items[this.items.length - 1]
      try {
        await this.run(item)
      } catch (err) {
        say(`clean-up of ${item.name} failed: ${(err as Error).message}; killing it`)
        try {
          item.emergency()
        } catch {
          /* best effort */
        }
      }
    }
  }

  /** Synchronous last resort (a second Ctrl-C): SIGKILL and delete, without waiting. */
  emergency(): void {
    for (const item of [...this.items].reverse()) {
      try {
        item.emergency()
      } catch {
        /* best effort */
      }
    }
  }
}

/** SIGKILLs the nodes of a poolboard bench cluster and deletes its directory. */
function killPoolboardNow(cluster: BenchCluster): void {
  new LocalCluster(cluster.dir, new Progress(false)).killAllNow()
  rmSync(cluster.base, { recursive: true, force: true })
}

// ---- statements ----

interface Chain {
  /** `{"entry":"<base64>"}` bodies, in the order they must commit. */
  bodies: string[]
  /** The next body to send. */
  cursor: number
  /** The (sub-)pool state the next generated statement partitions. */
  tip: PoolState
}

/**
 * A pool of `members` deterministic members and `members / actives` chains of valid, mutually
 * non-conflicting partition statements. The same supply serves every cluster: `reset()` starts the
 * chains again from their first statement on a fresh board.
 */
class StatementSupply {
  readonly genesisBody: string
  readonly chains: Chain[] = []
  private readonly secretOf = new Map<string, Uint8Array>()
  private readonly free: number[] = []
  generated = 0
  generateMs = 0

  constructor(
    readonly members: number,
    readonly actives: number
  ) {
    const secrets = Array.from({ length: members }, (_, i) =>
      secretKeyFromSeed(new TextEncoder().encode(`compare-etcd member ${i}`))
    )
    const keys = secrets.map(publicKeyOf)
    keys.forEach((k, i) => this.secretOf.set(Buffer.from(k).toString('hex'), secrets[i]))
    const genesis = makeGenesis({
      members: keys.map((key, i) => ({ key, peerId: `benchmember${i}`, balanceSats: 100_000n + BigInt(i) })),
      funding: { txid: new Uint8Array(32).fill(7), vout: 0 },
      kickoutDelayBlocks: 144,
      creationHeight: 0
    })
    const s0 = initialState(genesis)
    const h = stateHash(s0)
    const signatures = s0.pool.members.map((k) => signHash(h, this.secret(k)))
    this.genesisBody = JSON.stringify({
      entry: Buffer.from(encodeGenesisEntry(genesis, { state: s0, signatures })).toString('base64')
    })
    const sorted = s0.pool.members
    for (let c = 0; c + actives <= sorted.length; c += actives) {
      // The first statement of each chain partitions the root among this chain's members.
      this.chains.push({ bodies: [], cursor: 0, tip: s0 })
      this.grow(this.chains[this.chains.length - 1], sorted.slice(c, c + actives))
    }
    this.reset()
  }

  private secret(key: Uint8Array): Uint8Array {
    const s = this.secretOf.get(Buffer.from(key).toString('hex'))
    if (s === undefined) throw new Error('statement supply: a key without its secret')
    return s
  }

  /** Appends one statement to `chain`: a partition of its tip among `actives` (default: all the tip's members). */
  private grow(chain: Chain, actives: Uint8Array[] = chain.tip.pool.members): void {
    const t0 = performance.now()
    const parent = chain.tip
    const balances = actives.map(
      (k) => parent.balances[parent.pool.members.findIndex((m) => Buffer.compare(m, k) === 0)]
    )
    let stmt = buildPartitionStatement(parent, actives, balances, parent.heightT)
    for (const k of stmt.actives) stmt = withStatementSignature(stmt, k, signStatement(stmt, this.secret(k)))
    chain.bodies.push(JSON.stringify({ entry: Buffer.from(encodeStatementEntry(stmt)).toString('base64') }))
    chain.tip = partitionInitialState(parent.pool, stmt)
    this.generated++
    this.generateMs += performance.now() - t0
  }

  remaining(): number {
    return this.chains.reduce((n, c) => n + c.bodies.length - c.cursor, 0)
  }

  /**
   * Generates statements (spread over the chains) until at least `count` are left to send. Yields
   * to the event loop now and then (signals, clean-up) and stops when `cancelled()`.
   */
  async ensure(count: number, cancelled: () => boolean, progress: (done: number, of: number) => void): Promise<void> {
    const missing = count - this.remaining()
    if (missing <= 0) return
    const byRemaining = (): Chain =>
      this.chains.reduce((a, b) => (b.bodies.length - b.cursor < a.bodies.length - a.cursor ? b : a))
    for (let i = 0; i < missing; i++) {
      if (i % 50 === 0) {
        progress(i, missing)
        await new Promise((resolve) => setImmediate(resolve))
        if (cancelled()) throw new Error('statement generation cancelled')
      }
      this.grow(byRemaining())
    }
    progress(missing, missing)
  }

  /** Every chain from its first statement (a fresh board). */
  reset(): void {
    for (const c of this.chains) c.cursor = 0
    this.free.splice(0, this.free.length, ...this.chains.map((_, i) => i))
  }

  /** A chain with a statement to send that no client has in flight; it is the caller's until `release`. */
  take(): number | undefined {
    for (let n = this.free.length; n > 0; n--) {
      const i = this.free.shift()!
      const c = this.chains[i]
      if (c.cursor < c.bodies.length) return i
      this.free.push(i)
    }
    return undefined
  }

  /** Gives chain `i` back; its statement was committed (`ok`) or must be sent again. */
  release(i: number, ok: boolean): void {
    if (ok) this.chains[i].cursor++
    this.free.push(i)
  }
}

/** Reads committed board entries back and applies them to a local board, trusting signatures (the nodes checked them). */
class Replay {
  readonly board = new PoolBoard({ signatureCache: new SignatureCache(1, () => true) })
  accepted = 0
  duplicates = 0
  rejected = 0
  firstRejection = ''

  async apply(cluster: BenchCluster, from: number, to: number): Promise<void> {
    const node = await cluster.leader()
    const cookie = readFileSync(join(node.datadir, '.cookie'), 'utf8').trim()
    for (let i = from; i <= to; ) {
      const res = await fetch(`http://${node.api}/v1/board/entries?from=${i}&limit=1000`, {
        headers: { authorization: 'Basic ' + Buffer.from(cookie).toString('base64') },
        signal: AbortSignal.timeout(30_000)
      })
      if (!res.ok) throw new Error(`reading board entries from ${i}: HTTP ${res.status}`)
      const { entries } = (await res.json()) as {
        entries: Array<{ index: number; term: number; type: string; data: string }>
      }
      if (entries.length === 0) throw new Error(`reading board entries: nothing at ${i}, expected up to ${to}`)
      for (const e of entries) {
        if (e.index > to) break
        if (e.type !== 'genesis' && e.type !== 'statement' && e.type !== 'blocks') continue
        const { result } = this.board.apply(
          makeEntry(ZERO_HASH, e.index, e.term, 'normal', new Uint8Array(Buffer.from(e.data, 'base64')))
        )
        if (e.type !== 'statement') continue
        if (result.outcome === 'accepted') this.accepted++
        else if (/already on the board/.test(result.reason)) this.duplicates++
        else {
          this.rejected++
          if (this.firstRejection === '') this.firstRejection = `index ${e.index}: ${result.reason}`
        }
      }
      i = entries[entries.length - 1].index + 1
    }
  }
}

/** The commit the code was built from, and whether tracked files differ from it; null outside a git work tree. */
function sourceRevision(): { commit: string; modified: boolean } | null {
  const cwd = new URL('../../', import.meta.url)
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore']
    }).trim()
    const modified =
      execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
        cwd,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore']
      }).trim() !== ''
    return { commit, modified }
  } catch {
    return null
  }
}

/** Median time of a BIP340 verification on this machine, now. */
function verifyCostMs(): number {
  const sk = secretKeyFromSeed(new TextEncoder().encode('compare-etcd verify probe'))
  const pk = publicKeyOf(sk)
  const h = new Uint8Array(32).fill(9)
  const sig = signHash(h, sk)
  const samples: number[] = []
  for (let i = 0; i < 40; i++) {
    const t0 = performance.now()
    verifyHash(sig, h, pk)
    samples.push(performance.now() - t0)
  }
  return percentile(samples.slice(10), 50)
}

// ---- measurements ----

/** Linux's USER_HZ: the unit of the CPU times in /proc. */
const CLOCK_TICKS_PER_S = 100

/** CPU time (ticks) the whole machine spent busy, and the part of it spent by `pids`. */
function cpuTicks(pids: readonly number[]): { busy: number; ours: number } {
  // cpu  user nice system idle iowait irq softirq steal ...: steal is time the host gave elsewhere.
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  const busy = f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] ?? 0)
  let ours = 0
  for (const pid of pids) {
    try {
      // Fields after the parenthesised command name start at "state"; utime and stime are the 12th and 13th.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      ours += Number(rest[11]) + Number(rest[12])
    } catch {
      /* exited */
    }
  }
  return { busy, ours }
}

/**
 * Waits, up to `maxWaitMs`, until the processes other than `pids` have used less than
 * `maxOtherCores` over one second: on a shared machine, a run that starts while something else is
 * busy measures that as much as it measures the clusters. Returns what the others used last.
 */
async function waitQuiet(
  pids: readonly number[],
  maxOtherCores: number,
  maxWaitMs: number,
  interrupted: () => boolean
): Promise<number> {
  const deadline = Date.now() + maxWaitMs
  let said = false
  for (;;) {
    const a = cpuTicks(pids)
    const t0 = performance.now()
    await sleep(1_000)
    const b = cpuTicks(pids)
    const others = Math.max(
      0,
      (b.busy - a.busy - (b.ours - a.ours)) / CLOCK_TICKS_PER_S / ((performance.now() - t0) / 1000)
    )
    if (interrupted()) return others
    if (others < maxOtherCores || Date.now() >= deadline) {
      if (said)
        say(
          others < maxOtherCores ? '    quiet enough now' : `    still ${fmt(others, 2)} cores busy elsewhere; going on`
        )
      return others
    }
    if (!said)
      say(
        `    waiting for the machine to quieten: other processes use ${fmt(others, 2)} cores (up to ${Math.round(maxWaitMs / 1000)} s, --quiet-wait-s)`
      )
    said = true
  }
}

/** SIGKILLs the leader (`kill`) and times until a write through any of `targets` (the survivors) is acknowledged. */
async function timeToNextWrite(kill: () => void, targets: Target[]): Promise<number> {
  const agent = new Agent({ keepAlive: true })
  let done = false
  let outstanding = 0
  try {
    kill()
    const t0 = performance.now()
    return await new Promise<number>((resolve, reject) => {
      const tick = (): void => {
        if (done) return
        if (performance.now() - t0 > FAILOVER_TIMEOUT_MS) {
          done = true
          reject(new Error(`no write was acknowledged within ${FAILOVER_TIMEOUT_MS / 1000} s of killing the leader`))
          return
        }
        // A new round of writes every few ms, without waiting for earlier ones: a member may answer
        // at once (no leader, not the leader) or hold a write for seconds.
        if (outstanding < FAILOVER_MAX_OUTSTANDING) {
          for (const t of targets) {
            outstanding++
            void post(t, agent).then((status) => {
              outstanding--
              if (!done && status >= 200 && status < 300) {
                done = true
                resolve(performance.now() - t0)
              }
            })
          }
        }
        setTimeout(tick, FAILOVER_PROBE_INTERVAL_MS)
      }
      tick()
    })
  } finally {
    done = true
    agent.destroy()
  }
}

interface Run extends LoadResult {
  /** 1-minute load average at the end of the run (this benchmark's own processes included). */
  loadAvg1: number
  /** CPU cores used on average during the run by this benchmark's processes (load generator, etcd, poolboard) and by everything else. */
  oursCores: number
  otherCores: number
  /** Answers other than 2xx, by status. */
  errorStatuses: Record<string, number>
  /** The leader's term differed after the run from before its warm-up (or could not be read): an election happened. */
  leaderChanged: boolean
}

interface StatementsRun extends Run {
  /** Of the statements committed during the run (warm-up included): accepted, re-sent after an error, refused. */
  accepted: number
  duplicates: number
  rejected: number
  firstRejection: string
  supplyRanOut: boolean
  /** BIP340 verifications per second over all nodes: statements/s × actives × nodes. */
  verificationsPerS: number
}

interface Row {
  clients: number
  etcd: Run
  poolboard: Run
  statements?: StatementsRun
}

interface SizeResult {
  nodes: number
  rows: Row[]
  failoverMs: { etcd: number[]; poolboard: number[]; etcdSummary: Summary; poolboardSummary: Summary }
  statementsSetup?: { rootPartitions: number; seconds: number }
}

function summaryLine(r: LoadResult, unit: string): string {
  return (
    `${fmt(r.throughputPerS, 0)} ${unit}/s, p50 ${fmt(r.latencyMs.p50, 2)} ms, p99 ${fmt(r.latencyMs.p99, 2)} ms` +
    (r.errors > 0 ? `, ${r.errors} errors` : '')
  )
}

function ratio(a: number, b: number): string {
  return Number.isFinite(a / b) ? (a / b).toFixed(2) : '-'
}

/** The board's goals against etcd: at least etcd's writes/s at every load, 1.5x at 64 clients and more. */
function throughputBudget(clients: number): Budget {
  return { atLeast: clients >= 64 ? 1.5 : 1.0 }
}
/** At 1 client (pure latency) the board's p50 is at most etcd's. */
const ONE_CLIENT_P50_BUDGET: Budget = { atMost: 1.0 }

/** A ratio with its goal beside it, when it has one. */
function budgeted(a: number, b: number, budget: Budget | null): string {
  if (budget === null || !Number.isFinite(a / b)) return ratio(a, b)
  return withBudget(a / b, budget, 2)
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...CLUSTER_LOAD_OPTIONS,
      'warmup-s': { type: 'string', default: '1' },
      'pause-s': { type: 'string', default: '2' },
      entries: { type: 'string', default: 'opaque' },
      'statement-actives': { type: 'string', default: '2' },
      'quiet-wait-s': { type: 'string', default: '60' },
      'quiet-cores': { type: 'string', default: '0.25' },
      'max-minutes': { type: 'string', default: '60' }
    }
  })
  const sizes = countsOption('sizes', values.sizes)
  const clientCounts = countsOption('clients', values.clients)
  const durationMs = numberOption('duration-s', values['duration-s'], { min: 0.1 }) * 1000
  const warmupMs = numberOption('warmup-s', values['warmup-s']) * 1000
  const pauseMs = numberOption('pause-s', values['pause-s']) * 1000
  const valueBytes = numberOption('value-bytes', values['value-bytes'], { integer: true })
  const failovers = numberOption('failovers', values.failovers, { integer: true })
  const actives = numberOption('statement-actives', values['statement-actives'], { min: 1, integer: true })
  const maxMinutes = numberOption('max-minutes', values['max-minutes'])
  const quietWaitMs = numberOption('quiet-wait-s', values['quiet-wait-s']) * 1000
  const quietCores = numberOption('quiet-cores', values['quiet-cores'])
  if (values.entries !== 'opaque' && values.entries !== 'statements')
    throw new UsageError(`--entries: expected opaque or statements, got "${values.entries}"`)
  const withStatements = values.entries === 'statements'
  const maxClients = Math.max(...clientCounts)
  if (withStatements && maxClients * actives > STATEMENT_MEMBERS_MAX) {
    throw new UsageError(
      `--statement-actives: each client needs a chain of its own, so clients × actives must be at most ${STATEMENT_MEMBERS_MAX} members (${maxClients} × ${actives})`
    )
  }

  const resources = new Resources()
  // Once set, the run is being stopped (Ctrl-C, SIGTERM, time limit): clean-up is under way and the
  // process exits when it is done, whatever the measurement code is doing meanwhile.
  let stopping: Promise<never> | undefined
  const stop = (why: string, code: number): Promise<never> => {
    if (stopping === undefined) {
      say(`\n${why}: stopping every etcd and poolboard process and deleting the temporary directories ...`)
      stopping = resources.releaseAll().then(
        () => process.exit(code),
        () => process.exit(code)
      )
    }
    return stopping
  }
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping !== undefined) {
      say(`${signal} again: killing what is left`)
      resources.emergency()
      killAllEtcdNow()
      process.exit(130)
    }
    void stop(signal, 130)
  }
  const interrupted = (): boolean => stopping !== undefined
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  const watchdog = setTimeout(() => {
    void stop(`over the ${maxMinutes}-minute limit (--max-minutes)`, 1)
  }, maxMinutes * 60_000)

  const startedAt = new Date().toISOString()
  const loadStart = loadavg()
  say(
    `compare-etcd: ${sizes.join(' and ')} members, ${clientCounts.join('/')} clients, ${durationMs / 1000} s per run (+${warmupMs / 1000} s warm-up), ${valueBytes}-byte values` +
      (withStatements ? `, plus partition statements of ${actives} actives` : '')
  )
  say(`machine: ${cpus().length} CPUs, load average ${loadStart.map((l) => l.toFixed(2)).join(' ')} (1, 5, 15 min)`)

  try {
    const etcdInfo = await ensureEtcd(say)
    const revision = sourceRevision()
    say(
      `etcd ${etcdInfo.version} (${etcdInfo.binary}); poolboard ${VERSION}` +
        (revision === null ? '' : ` at ${revision.commit}${revision.modified ? ' with uncommitted changes' : ''}`)
    )

    let supply: StatementSupply | undefined
    let verifyMs = NaN
    if (withStatements) {
      verifyMs = verifyCostMs()
      const members = Math.max(2, maxClients * actives)
      say(
        `statements: a pool of ${members} members in ${Math.floor(members / actives)} chains of ${actives}-active partitions; a BIP340 verification costs about ${fmt(verifyMs, 2)} ms here`
      )
      supply = new StatementSupply(members, actives)
    }

    const results: SizeResult[] = []
    for (const size of sizes) {
      if (interrupted()) break
      results.push(await measureSize(size))
    }

    printTables(results)
    const loadEnd = loadavg()
    say(`load average at the end: ${loadEnd.map((l) => l.toFixed(2)).join(' ')}`)
    process.stdout.write(
      `results: ${writeResult('compare-etcd', {
        startedAt,
        sizes,
        clientCounts,
        durationMs,
        warmupMs,
        valueBytes,
        entries: values.entries,
        statementActives: withStatements ? actives : null,
        statementMembers: supply?.members ?? null,
        verifyMs: withStatements ? verifyMs : null,
        statementsGenerated: supply?.generated ?? null,
        statementGenerateMs: supply?.generateMs ?? null,
        poolboard: { version: VERSION, revision },
        etcd: etcdInfo,
        machine: { cpus: cpus().length, loadAvgStart: loadStart, loadAvgEnd: loadEnd },
        results
      })}\n`
    )

    async function measureSize(size: number): Promise<SizeResult> {
      say(`\n${size} members`)
      const etcd = await EtcdCluster.create(etcdInfo.binary, size)
      const releaseEtcd = resources.add(
        `etcd cluster in ${etcd.base}`,
        async () => {
          await etcd.down()
        },
        () => {
          killAllEtcdNow()
          rmSync(etcd.base, { recursive: true, force: true })
        }
      )
      const pb = new BenchCluster()
      const releasePb = resources.add(
        `poolboard cluster in ${pb.base}`,
        async () => {
          await pb.down()
        },
        () => {
          killPoolboardNow(pb)
        }
      )
      try {
        say(`  starting ${size} etcd members ...`)
        await etcd.start()
        say(`  starting ${size} poolboard nodes (lab mode) ...`)
        await poolboard(['cluster', 'up', '--nodes', String(size), '--lab', '--dir', pb.dir, '--json'])
        const opaqueBody = rawEntryBody(valueBytes)
        // This process (the load generator), every etcd member and every poolboard node.
        const ourPids = async (): Promise<number[]> => [
          process.pid,
          ...etcd
            .running()
            .map((m) => etcd.pid(m))
            .filter((p): p is number => p !== undefined),
          ...(await pb.nodes()).flatMap((n) => (n.pid === null ? [] : [n.pid]))
        ]

        let replay: Replay | undefined
        let statementsSetup: SizeResult['statementsSetup']
        if (supply !== undefined) {
          supply.reset()
          replay = new Replay()
          statementsSetup = await setUpPool(pb, supply, replay)
        }

        const rows: Row[] = []
        for (const clients of clientCounts) {
          if (interrupted()) break
          const eLeader = await etcd.leader()
          const pids = await ourPids()
          const eTarget = etcd.putTarget(eLeader, valueBytes)
          const etcdRun = await measure(
            `etcd, ${clients} clients`,
            'writes',
            async (ms, answered) =>
              await closedLoopEach(
                () => eTarget,
                clients,
                ms,
                (_, s) => {
                  answered(s)
                }
              ),
            pids,
            async () => (await etcd.status(eLeader))?.raftTerm
          )
          await sleep(pauseMs)
          const pLeader = await pb.leader()
          const pTarget = pb.target(pLeader, opaqueBody)
          const pbRun = await measure(
            `poolboard, ${clients} clients`,
            'appends',
            async (ms, answered) =>
              await closedLoopEach(
                () => pTarget,
                clients,
                ms,
                (_, s) => {
                  answered(s)
                }
              ),
            pids,
            async () => await boardTerm(pb, pLeader)
          )
          const row: Row = { clients, etcd: etcdRun, poolboard: pbRun }
          if (supply !== undefined && replay !== undefined) {
            await sleep(pauseMs)
            row.statements = await measureStatements(pb, supply, replay, clients, size, pbRun.throughputPerS, pids)
          }
          rows.push(row)
          await sleep(pauseMs)
        }

        const failover = { etcd: [] as number[], poolboard: [] as number[] }
        for (let i = 0; i < failovers && !interrupted(); i++) {
          if (quietWaitMs > 0) await waitQuiet(await ourPids(), quietCores, quietWaitMs, interrupted)
          const eLeader = await etcd.leader()
          const eSurvivors = etcd.running().filter((m) => m !== eLeader)
          const eMs = await timeToNextWrite(
            () => {
              etcd.kill(eLeader)
            },
            eSurvivors.map((m) => etcd.putTarget(m, valueBytes))
          )
          failover.etcd.push(eMs)
          say(
            `  etcd failover ${i + 1}: ${fmt(eMs, 0)} ms from SIGKILL of the leader (${eLeader.name}) to the next acknowledged write; restarting it ...`
          )
          await etcd.restart(eLeader)
          await sleep(pauseMs)

          if (quietWaitMs > 0) await waitQuiet(await ourPids(), quietCores, quietWaitMs, interrupted)
          const pLeader = await pb.leader()
          const pSurvivors = (await pb.nodes()).filter((n) => n.running && n.index !== pLeader.index)
          const pMs = await timeToNextWrite(
            () => {
              process.kill(pLeader.pid!, 'SIGKILL')
            },
            pSurvivors.map((n) => pb.target(n, opaqueBody))
          )
          failover.poolboard.push(pMs)
          say(
            `  poolboard failover ${i + 1}: ${fmt(pMs, 0)} ms from SIGKILL of the leader (node${pLeader.index}) to the next acknowledged append; restarting it ...`
          )
          await restartPoolboardNode(pb, pLeader.index)
          await sleep(pauseMs)
        }
        return {
          nodes: size,
          rows,
          failoverMs: {
            ...failover,
            etcdSummary: summarize(failover.etcd),
            poolboardSummary: summarize(failover.poolboard)
          },
          statementsSetup
        }
      } finally {
        say(`  stopping both clusters ...`)
        await releasePb()
        await releaseEtcd()
      }
    }

    /**
     * A warm-up, then the measured run, with progress on stderr. `load` runs the closed loop for
     * the given time and reports each answer's status; `term` reads the leader's term, before and
     * after, to tell a run during which the leader changed.
     */
    async function measure(
      label: string,
      unit: string,
      load: (ms: number, answered: (status: number) => void) => Promise<LoadResult>,
      pids: readonly number[],
      term: () => Promise<number | undefined>
    ): Promise<Run> {
      if (quietWaitMs > 0) await waitQuiet(pids, quietCores, quietWaitMs, interrupted)
      // Read before the warm-up: an election during the warm-up leaves the run aimed at a follower.
      const termBefore = await term()
      if (warmupMs > 0) await load(warmupMs, () => {})
      process.stderr.write(`  ${label}, ${durationMs / 1000} s ... `)
      const statuses = new Map<number, number>()
      const before = cpuTicks(pids)
      const r = await load(durationMs, (status) => {
        if (status < 200 || status >= 300) statuses.set(status, (statuses.get(status) ?? 0) + 1)
      })
      const after = cpuTicks(pids)
      const termAfter = await term()
      const loadAvg1 = loadavg()[0]
      const cores = (ticks: number): number => ticks / CLOCK_TICKS_PER_S / r.durationS
      const oursCores = cores(after.ours - before.ours)
      const otherCores = Math.max(0, cores(after.busy - before.busy) - oursCores)
      const errorStatuses = Object.fromEntries(
        [...statuses].sort((a, b) => b[1] - a[1]).map(([s, n]) => [s === 0 ? 'no answer' : `HTTP ${s}`, n])
      )
      const leaderChanged = termBefore === undefined || termAfter === undefined || termBefore !== termAfter
      process.stderr.write(
        `${summaryLine(r, unit)}${
          r.errors > 0
            ? ` (${Object.entries(errorStatuses)
                .map(([s, n]) => `${s}: ${n}`)
                .join(', ')})`
            : ''
        }` +
          `${leaderChanged ? `; THE LEADER CHANGED (term ${termBefore ?? '?'} -> ${termAfter ?? '?'})` : ''}` +
          ` (CPU: ${fmt(oursCores, 2)} cores ours, ${fmt(otherCores, 2)} others; load average ${loadAvg1.toFixed(2)})\n`
      )
      return { ...r, loadAvg1, oursCores, otherCores, errorStatuses, leaderChanged }
    }

    /** Submits the genesis, then the first statement of every chain (root partitions), before any measurement. */
    async function setUpPool(
      pb: BenchCluster,
      supply: StatementSupply,
      replay: Replay
    ): Promise<SizeResult['statementsSetup']> {
      const leader = await pb.leader()
      const from = ((await pb.boardStatus(leader))?.commit ?? 0) + 1
      const base = pb.target(leader, () => '')
      say(
        `  statements: submitting the genesis of ${supply.members} members and ${supply.chains.length} root partitions ...`
      )
      const status = await post({ ...base, body: () => supply.genesisBody })
      if (status !== 200) throw new Error(`the genesis was not accepted for proposal: HTTP ${status}`)
      const t0 = performance.now()
      const agent = new Agent({ keepAlive: true })
      let next = 0
      let retries = 0
      const worker = async (): Promise<void> => {
        while (next < supply.chains.length && !interrupted()) {
          const chain = supply.chains[next++]
          for (let attempt = 1; ; attempt++) {
            const s = await post({ ...base, body: () => chain.bodies[0] }, agent)
            if (s >= 200 && s < 300) break
            if (attempt >= 5) throw new Error(`statements: a root partition failed ${attempt} times (HTTP ${s})`)
            retries++
            await sleep(200)
          }
          chain.cursor = 1
        }
      }
      try {
        await Promise.all(Array.from({ length: 4 }, worker))
      } finally {
        agent.destroy()
      }
      const seconds = (performance.now() - t0) / 1000
      if (retries > 0) say(`  statements: ${retries} root partitions failed and were sent again`)
      const to = (await pb.boardStatus(leader))?.applied ?? 0
      await replay.apply(pb, from, to)
      if (replay.rejected > 0 || replay.board.genesis === null)
        throw new Error(
          `statements: the pool was not set up: ${replay.board.genesis === null ? 'no genesis' : replay.firstRejection}`
        )
      say(
        `  statements: ${replay.accepted} root partitions accepted in ${fmt(seconds, 1)} s (each checks every member's withdraw outpoint of the root pool)`
      )
      return { rootPartitions: replay.accepted, seconds }
    }

    async function measureStatements(
      pb: BenchCluster,
      supply: StatementSupply,
      replay: Replay,
      clients: number,
      size: number,
      opaquePerS: number,
      pids: readonly number[]
    ): Promise<StatementsRun> {
      // Generate enough beforehand for the warm-up and the run: at most what opaque entries reached,
      // and at most 1.5 times what the machine's cores could verify if they did nothing else.
      const ceilingPerS = (1.5 * cpus().length * 1000) / (size * supply.actives * verifyMs)
      const expectPerS = Math.min(Number.isFinite(opaquePerS) && opaquePerS > 0 ? opaquePerS : ceilingPerS, ceilingPerS)
      const want = Math.ceil(((expectPerS * (durationMs + warmupMs)) / 1000) * 1.3) + clients
      if (supply.remaining() < want) {
        const t0 = performance.now()
        const progress = new Progress()
        const more = want - supply.remaining()
        await supply.ensure(want, interrupted, (done, of) => {
          progress.update(`  statements: signing ${done}/${of} more ...`)
        })
        progress.done(`  statements: signed ${more} more in ${fmt((performance.now() - t0) / 1000, 1)} s`)
        await sleep(pauseMs)
      }
      const leader = await pb.leader()
      const from = ((await pb.boardStatus(leader))?.commit ?? 0) + 1
      const before = { accepted: replay.accepted, duplicates: replay.duplicates, rejected: replay.rejected }
      const base = pb.target(leader, () => '')
      let ranOut = false
      const taken = new Map<number, number>()
      const load = async (ms: number, answered: (status: number) => void): Promise<LoadResult> =>
        await closedLoopEach(
          (client) => {
            const i = supply.take()
            if (i === undefined) {
              ranOut = true
              return undefined
            }
            taken.set(client, i)
            const chain = supply.chains[i]
            return { ...base, body: () => chain.bodies[chain.cursor] }
          },
          clients,
          ms,
          (client, s) => {
            supply.release(taken.get(client)!, s >= 200 && s < 300)
            answered(s)
          }
        )
      const r = await measure(
        `poolboard statements, ${clients} clients`,
        'statements',
        load,
        pids,
        async () => await boardTerm(pb, leader)
      )
      const to = (await pb.boardStatus(leader))?.applied ?? 0
      await replay.apply(pb, from, to)
      const accepted = replay.accepted - before.accepted
      const duplicates = replay.duplicates - before.duplicates
      const rejected = replay.rejected - before.rejected
      say(
        `    read back: ${accepted} statements accepted on the board` +
          (duplicates > 0 ? `, ${duplicates} sent again after an error` : '') +
          (rejected > 0 ? `, ${rejected} REFUSED (first: ${replay.firstRejection})` : '') +
          (ranOut ? '; the supply ran out before the end' : '')
      )
      return {
        ...r,
        accepted,
        duplicates,
        rejected,
        firstRejection: replay.firstRejection,
        supplyRanOut: ranOut,
        verificationsPerS: r.throughputPerS * supply.actives * size
      }
    }
  } catch (err) {
    // Measuring against clusters that are being torn down fails: that is not the error to report.
    if (stopping !== undefined) await stopping
    throw err
  } finally {
    clearTimeout(watchdog)
    if (stopping !== undefined) await stopping
    await resources.releaseAll()
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }

  function printTables(results: SizeResult[]): void {
    const rate = (r: Run): string => fmt(r.throughputPerS, 0) + (r.leaderChanged ? '!' : '')
    const runs = results.flatMap((s) =>
      s.rows.flatMap((r) => [r.etcd, r.poolboard, ...(r.statements === undefined ? [] : [r.statements])])
    )
    process.stdout.write(
      `\nwrites acknowledged by the leader, closed loop over HTTP/JSON, ${valueBytes}-byte values, ${durationMs / 1000} s per run; ratio = poolboard / etcd\n`
    )
    process.stdout.write(
      renderTable(
        [
          'nodes',
          'clients',
          'etcd /s',
          'etcd p50 ms',
          'etcd p99 ms',
          'poolboard /s',
          'pb p50 ms',
          'pb p99 ms',
          'ratio /s',
          'ratio p50',
          'ratio p99',
          'errors e/pb',
          'cpu e/pb',
          'others e/pb'
        ],
        results.flatMap((s) =>
          s.rows.map((r) => [
            String(s.nodes),
            String(r.clients),
            rate(r.etcd),
            fmt(r.etcd.latencyMs.p50, 2),
            fmt(r.etcd.latencyMs.p99, 2),
            rate(r.poolboard),
            fmt(r.poolboard.latencyMs.p50, 2),
            fmt(r.poolboard.latencyMs.p99, 2),
            budgeted(r.poolboard.throughputPerS, r.etcd.throughputPerS, throughputBudget(r.clients)),
            budgeted(r.poolboard.latencyMs.p50, r.etcd.latencyMs.p50, r.clients === 1 ? ONE_CLIENT_P50_BUDGET : null),
            ratio(r.poolboard.latencyMs.p99, r.etcd.latencyMs.p99),
            `${r.etcd.errors}/${r.poolboard.errors}`,
            `${fmt(r.etcd.oursCores, 1)}/${fmt(r.poolboard.oursCores, 1)}`,
            `${fmt(r.etcd.otherCores, 1)}/${fmt(r.poolboard.otherCores, 1)}`
          ])
        ),
        { alignRight: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13] }
      ) + '\n'
    )
    process.stdout.write(
      'cpu: cores used during the run by this benchmark (load generator and both clusters); others: by everything else on the machine\n'
    )
    process.stdout.write(
      'goals: ratio /s at least 1.0 at every load and 1.5 at 64 clients; at 1 client, ratio p50 at most 1.0 (the board no slower than etcd)\n'
    )

    if (results.some((s) => s.rows.some((r) => r.statements !== undefined))) {
      process.stdout.write(
        `\npoolboard: opaque entries and partition statements (${actives} signatures each, verified by every node) on the same cluster\n`
      )
      process.stdout.write(
        renderTable(
          [
            'nodes',
            'clients',
            'opaque /s',
            'p50 ms',
            'p99 ms',
            'statements /s',
            'p50 ms',
            'p99 ms',
            'ratio /s',
            'verifications /s',
            'accepted',
            'refused',
            'errors',
            'cpu op/st',
            'others op/st'
          ],
          results.flatMap((s) =>
            s.rows
              .filter((r) => r.statements !== undefined)
              .map((r) => {
                const st = r.statements!
                return [
                  String(s.nodes),
                  String(r.clients),
                  rate(r.poolboard),
                  fmt(r.poolboard.latencyMs.p50, 2),
                  fmt(r.poolboard.latencyMs.p99, 2),
                  rate(st) + (st.supplyRanOut ? '*' : ''),
                  fmt(st.latencyMs.p50, 2),
                  fmt(st.latencyMs.p99, 2),
                  ratio(st.throughputPerS, r.poolboard.throughputPerS),
                  fmt(st.verificationsPerS, 0),
                  String(st.accepted),
                  String(st.rejected),
                  String(st.errors),
                  `${fmt(r.poolboard.oursCores, 1)}/${fmt(st.oursCores, 1)}`,
                  `${fmt(r.poolboard.otherCores, 1)}/${fmt(st.otherCores, 1)}`
                ]
              })
          ),
          { alignRight: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14] }
        ) + '\n'
      )
      if (results.some((s) => s.rows.some((r) => r.statements?.supplyRanOut === true)))
        process.stdout.write(
          '* the pre-signed statements ran out before the end of the run: the rate is over the shorter time\n'
        )
    }
    if (runs.some((r) => r.leaderChanged))
      process.stdout.write(
        '! the leader changed during this run or its warm-up (an election): its figures are not those of a steady leader\n'
      )

    if (results.some((s) => s.failoverMs.etcd.length > 0)) {
      process.stdout.write(
        '\nfrom SIGKILL of the leader to the next acknowledged write through a surviving member (ms)\n'
      )
      process.stdout.write(
        renderTable(
          [
            'nodes',
            'etcd p50',
            'etcd max',
            'poolboard p50',
            'poolboard max',
            'ratio p50',
            'etcd runs',
            'poolboard runs'
          ],
          results.map((s) => [
            String(s.nodes),
            fmt(s.failoverMs.etcdSummary.p50, 0),
            fmt(s.failoverMs.etcdSummary.max, 0),
            fmt(s.failoverMs.poolboardSummary.p50, 0),
            fmt(s.failoverMs.poolboardSummary.max, 0),
            ratio(s.failoverMs.poolboardSummary.p50, s.failoverMs.etcdSummary.p50),
            s.failoverMs.etcd.map((m) => fmt(m, 0)).join(' '),
            s.failoverMs.poolboard.map((m) => fmt(m, 0)).join(' ')
          ]),
          { alignRight: [0, 1, 2, 3, 4, 5] }
        ) + '\n'
      )
    }
  }
}

/** Starts a killed poolboard node again and waits until it has applied what the leader had committed. */
async function restartPoolboardNode(pb: BenchCluster, index: number): Promise<void> {
  await poolboard(['cluster', 'start', String(index), '--dir', pb.dir])
  const leader = await pb.leader()
  const commit = (await pb.boardStatus(leader))?.commit ?? 0
  const node = (await pb.nodes()).find((n) => n.index === index)
  if (node === undefined) throw new Error(`no node ${index}`)
  await pb.waitApplied(node, commit, 60_000)
}

/** The board term `node` is in, from its admin API. */
async function boardTerm(
  pb: BenchCluster,
  node: Awaited<ReturnType<BenchCluster['leader']>>
): Promise<number | undefined> {
  const s = (await pb.boardStatus(node)) as { term?: number } | undefined
  return s?.term
}
