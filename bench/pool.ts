import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { encodeGenesisEntry, encodeStatementEntry } from '../board/entries.js'
import { PoolBoard } from '../board/pool-board.js'
import { makeEntry, ZERO_HASH, type Entry } from '../board/raft/index.js'
import { SignatureCache } from '../board/signature-cache.js'
import { signatureChecksOf } from '../board/signatures.js'
import { loadNativeBip340, nobleBip340, type Bip340, type Bip340Check } from '../protocol/bip340.js'
import { SignatureWorkers } from '../daemon/replica/signature-workers.js'
import pino from 'pino'
import { toHex } from '../protocol/bytes.js'
import {
  buildPartitionStatement,
  initialState,
  makeGenesis,
  partitionInitialState,
  publicKeyOf,
  secretKeyFromSeed,
  signState,
  signStatement,
  statementId,
  withStatementSignature,
  type PartitionStatement,
  type PoolState
} from '../protocol/index.js'
import { renderTable } from '../daemon/host/table.js'
import { BenchCluster } from './board.js'
import {
  UsageError,
  cpuSeconds,
  fmt,
  numberOption,
  summarize,
  withBudget,
  writeResult,
  type Budget,
  type Summary
} from './lib.js'

/**
 * `npm run bench -- pool`:
 *
 * 1. partition latency on real nodes: the time from asking a node for a partition (admin API) to
 *    its answer, which comes once the statement is committed and applied there without conflict;
 *    3 actives in a 7-member pool, each partition nested in the previous one so all stay valid;
 * 2. statements verified per second by PoolBoard.apply on one thread, with a cold signature cache
 *    (every signature checked) and a warm one (signatures already checked when gossip brought them);
 * 3. BIP340 verifications per second on one core, each backend, one by one and in batches;
 * 4. a returning member catching up: `--catch-up` statements of `--actives` actives verified and
 *    applied as a node does it (signature workers verify batches ahead, PoolBoard.apply finds them
 *    in the cache), goal under 30 s for 100,000 statements of 3 actives.
 */

/** Goals from the issue of pools of many members. */
const VERIFY_GOAL_PER_S = 10_000
const CATCH_UP_GOAL_S = 30
const CATCH_UP_GOAL_STATEMENTS = 100_000
/** Entries handed to the workers at once while catching up, as the Raft driver hands them (one append). */
const CATCH_UP_BATCH_ENTRIES = 1_024

interface VerifyRate {
  backend: string
  singlePerS: number
  batchPerS: number
}

function verifyRates(count: number): VerifyRate[] {
  const checks: Bip340Check[] = []
  for (let i = 0; i < count; i++) {
    const secret = secretKeyFromSeed(new TextEncoder().encode(`verify ${i}`))
    const hash = secretKeyFromSeed(new TextEncoder().encode(`hash ${i}`))
    checks.push({
      signature: nobleBip340.sign(hash, secret, new Uint8Array(32)),
      hash,
      key: nobleBip340.publicKey(secret)
    })
  }
  const native = loadNativeBip340()
  return [nobleBip340, ...(native === null ? [] : [native])].map((b: Bip340) => {
    const n = b.name === 'noble' ? Math.min(count, 1_000) : count
    let t = performance.now()
    for (const c of checks.slice(0, n))
      if (!b.verify(c.signature, c.hash, c.key)) throw new Error('a valid signature did not verify')
    const singlePerS = n / ((performance.now() - t) / 1000)
    t = performance.now()
    for (let i = 0; i < n; i += 256)
      if (!b.verifyBatch(checks.slice(i, Math.min(n, i + 256)))) throw new Error('a valid batch did not verify')
    const batchPerS = n / ((performance.now() - t) / 1000)
    return { backend: b.name, singlePerS, batchPerS }
  })
}

interface CatchUp {
  statements: number
  actives: number
  signatures: number
  seconds: number
  perS: number
  workers: number
}

/** Applies a chain as a returning member does: workers verify the next batch while this thread applies. */
async function catchUp(members: number, actives: number, count: number): Promise<CatchUp> {
  process.stderr.write(`catch-up: building ${count} statements of ${actives} actives ...\n`)
  const { entries } = statementChain(members, actives, count)
  const cache = new SignatureCache(Math.max(65_536, count * actives * 2))
  const workers = new SignatureWorkers(cache, pino({ level: 'silent' }))
  try {
    const board = new PoolBoard({ signatureCache: cache })
    board.apply(entries[0])
    const rest = entries.slice(1)
    const batches: Entry[][] = []
    for (let i = 0; i < rest.length; i += CATCH_UP_BATCH_ENTRIES)
      batches.push(rest.slice(i, i + CATCH_UP_BATCH_ENTRIES))
    process.stderr.write(`catch-up: verifying and applying ...\n`)
    const t0 = performance.now()
    let next = workers.prepare(batches[0].flatMap(signatureChecksOf))
    for (let b = 0; b < batches.length; b++) {
      await next
      if (b + 1 < batches.length) next = workers.prepare(batches[b + 1].flatMap(signatureChecksOf))
      for (const e of batches[b]) {
        const { result } = board.apply(e)
        if (result.outcome !== 'accepted')
          throw new Error(`statement at ${e.index} was ${result.outcome}: ${result.reason}`)
      }
    }
    const seconds = (performance.now() - t0) / 1000
    return {
      statements: count,
      actives,
      signatures: count * actives,
      seconds,
      perS: count / seconds,
      workers: workers.threads
    }
  } finally {
    await workers.stop()
  }
}

interface ApiNode {
  index: number
  datadir: string
  api: string
}

/** The goals of a round (partition or payment) on loopback: issue 18. */
const ROUND_P50_BUDGET: Budget = { atMost: 30 }
const ROUND_P99_BUDGET: Budget = { atMost: 60 }

async function post<T>(node: ApiNode, path: string, body: unknown, timeoutMs: number): Promise<T> {
  const cookie = readFileSync(join(node.datadir, '.cookie'), 'utf8').trim()
  const res = await fetch(`http://${node.api}${path}`, {
    method: 'POST',
    headers: { authorization: 'Basic ' + Buffer.from(cookie).toString('base64'), 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs)
  })
  const json = (await res.json()) as T & { error?: { message: string } }
  if (!res.ok) throw new Error(`${path} on node ${node.index}: ${json.error?.message ?? res.status}`)
  return json
}

const wallMs = (): number => performance.timeOrigin + performance.now()

/** One step of a round as a node logged it (daemon/pool/trace.ts), offset from the API call. */
interface TraceRow {
  step: string
  ms: Summary
}

/**
 * The rounds' timeline from the nodes' debug logs: for each step ("proposer: published",
 * "member: read"), its time after the API call, over every measured round.
 */
function roundTimeline(
  nodes: ApiNode[],
  proposer: ApiNode,
  starts: Array<{ atMs: number; endMs: number }>
): TraceRow[] {
  const hops: Array<{ who: string; hop: string; atMs: number }> = []
  for (const n of nodes) {
    const file = join(n.datadir, 'logs', 'poolboard.log')
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line.includes('"round hop"')) continue
      const j = JSON.parse(line) as { hop: string; atMs: number }
      hops.push({ who: n.index === proposer.index ? 'proposer' : 'member', hop: j.hop, atMs: j.atMs })
    }
  }
  const byStep = new Map<string, number[]>()
  for (const { atMs, endMs } of starts) {
    const seen = new Map<string, number>()
    for (const h of hops) {
      if (h.atMs < atMs || h.atMs > endMs) continue
      const step = `${h.who}: ${h.hop}`
      // A member's step: the last member to get there (the round waits for every active).
      seen.set(step, Math.max(seen.get(step) ?? 0, h.atMs - atMs))
    }
    for (const [step, ms] of seen) byStep.set(step, [...(byStep.get(step) ?? []), ms])
    byStep.set('answer', [...(byStep.get('answer') ?? []), endMs - atMs])
  }
  return [...byStep].map(([step, ms]) => ({ step, ms: summarize(ms) })).sort((a, b) => a.ms.p50 - b.ms.p50)
}

type RoundKind = 'partition' | 'payment'

async function roundLatency(
  kind: RoundKind,
  members: number,
  actives: number,
  count: number,
  trace: boolean
): Promise<{ latencyMs: Summary; samples: number[]; timeline: TraceRow[] | null; cpuMsPerRound: number }> {
  process.stderr.write(
    `${kind} latency: a ${members}-member pool${kind === 'partition' ? `, ${actives} actives` : ''}, ${count} ${kind}s\n`
  )
  const cluster = await BenchCluster.up(members, [
    '--pool',
    '--set',
    'block-interval-s=0',
    ...(trace ? ['--set', 'log-level=debug'] : [])
  ])
  try {
    const nodes = (await cluster.nodes()).filter((n) => n.running)
    const proposer = nodes[0]
    const others = nodes.slice(1, actives).map((n) => `node${n.index}`)
    const once = async (): Promise<void> => {
      if (kind === 'partition') await post(proposer, '/v1/pool/partition', { with: others }, 60_000)
      else await post(proposer, '/v1/pool/pay', { to: `node${nodes[1].index}`, amountSats: '1' }, 60_000)
    }
    // One round first, unmeasured: the first round also waits for gossip subscriptions to settle.
    await once()
    const samples: number[] = []
    const starts: Array<{ atMs: number; endMs: number }> = []
    // The CPU every node spent during the measured rounds: on a machine with fewer cores than nodes,
    // CPU per round over the cores is a floor under the round's latency.
    const pids = nodes.map((n) => n.pid).filter((pid): pid is number => pid !== null)
    const cpuBefore = pids.map(cpuSeconds)
    for (let i = 0; i < count; i++) {
      const atMs = wallMs()
      const t0 = performance.now()
      await once()
      samples.push(performance.now() - t0)
      starts.push({ atMs, endMs: wallMs() })
      process.stderr.write(`\r  ${i + 1}/${count}: ${fmt(samples[i], 1)} ms   `)
    }
    const cpuMsPerRound = (pids.reduce((sum, pid, k) => sum + cpuSeconds(pid) - cpuBefore[k], 0) * 1000) / count
    process.stderr.write('\n')
    return {
      latencyMs: summarize(samples),
      samples,
      timeline: trace ? roundTimeline(nodes, proposer, starts) : null,
      cpuMsPerRound
    }
  } finally {
    await cluster.down()
  }
}

interface ApplyPass {
  seconds: number
  perS: number
  applyUs: Summary
}
interface ApplyRate {
  actives: number
  statements: number
  cold: ApplyPass & { verified: number }
  warm: ApplyPass & { hits: number }
}

/** A chain of `count` valid statements, each partitioning the previous one's sub-pool among the same actives. */
export function statementChain(
  members: number,
  actives: number,
  count: number
): { entries: Entry[]; statements: PartitionStatement[] } {
  const secrets = Array.from({ length: members }, (_, i) =>
    secretKeyFromSeed(new TextEncoder().encode(`bench member ${i}`))
  )
  const keys = secrets.map(publicKeyOf)
  const secretOf = new Map(keys.map((k, i) => [toHex(k), secrets[i]]))
  const genesis = makeGenesis({
    members: keys.map((key, i) => ({ key, peerId: `12D3KooWbench${i}`, balanceSats: 100_000n })),
    funding: { txid: new Uint8Array(32).fill(1), vout: 0 },
    kickoutDelayBlocks: 144,
    creationHeight: 0
  })
  const s0 = initialState(genesis)
  const signatures = s0.pool.members.map((k) => signState(s0, secretOf.get(toHex(k))!))
  const data: Uint8Array[] = [encodeGenesisEntry(genesis, { state: s0, signatures })]
  const statements: PartitionStatement[] = []
  let parent: PoolState = s0
  for (let i = 0; i < count; i++) {
    const chosen = parent.pool.members.slice(0, actives)
    let stmt = buildPartitionStatement(
      parent,
      chosen,
      chosen.map((k) => parent.balances[parent.pool.members.indexOf(k)]),
      0
    )
    for (const k of stmt.actives) stmt = withStatementSignature(stmt, k, signStatement(stmt, secretOf.get(toHex(k))!))
    statements.push(stmt)
    data.push(encodeStatementEntry(stmt))
    parent = partitionInitialState(parent.pool, stmt)
  }
  const entries: Entry[] = []
  let prev = ZERO_HASH
  data.forEach((d, i) => {
    const e = makeEntry(prev, i + 1, 1, 'normal', d)
    prev = e.hash
    entries.push(e)
  })
  return { entries, statements }
}

function applyRate(members: number, actives: number, count: number): ApplyRate {
  const { entries, statements } = statementChain(members, actives, count)
  /** Applies the genesis, then times each statement; `cache` counts only the statements' signatures. */
  const applyAll = (cache: SignatureCache): { pass: ApplyPass; hits: number; misses: number } => {
    const board = new PoolBoard({ signatureCache: cache })
    board.apply(entries[0])
    const before = cache.stats()
    const samplesUs: number[] = []
    const t0 = performance.now()
    for (const e of entries.slice(1)) {
      const t = performance.now()
      const { result } = board.apply(e)
      samplesUs.push((performance.now() - t) * 1000)
      if (result.outcome !== 'accepted')
        throw new Error(`statement at ${e.index} was ${result.outcome}: ${result.reason}`)
    }
    const seconds = (performance.now() - t0) / 1000
    const after = cache.stats()
    return {
      pass: { seconds, perS: count / seconds, applyUs: summarize(samplesUs) },
      hits: after.hits - before.hits,
      misses: after.misses - before.misses
    }
  }
  // A throwaway pass first, so that compiling the decode and apply code is charged to neither measured pass.
  applyAll(new SignatureCache())
  const cold = applyAll(new SignatureCache())
  // Warm: every statement signature was already checked once, as when gossip brought the shares.
  const warmCache = new SignatureCache()
  for (const s of statements) {
    const id = statementId(s)
    for (const { index, signature } of s.signatures) warmCache.verify(signature, id, s.actives[index])
  }
  const warm = applyAll(warmCache)
  return {
    actives,
    statements: count,
    cold: { ...cold.pass, verified: cold.misses },
    warm: { ...warm.pass, hits: warm.hits }
  }
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      members: { type: 'string', default: '7' },
      actives: { type: 'string', default: '3' },
      partitions: { type: 'string', default: '20' },
      statements: { type: 'string', default: '300' },
      payments: { type: 'string', default: '20' },
      'skip-cluster': { type: 'boolean', default: false },
      trace: { type: 'boolean', default: false },
      'catch-up': { type: 'string', default: String(CATCH_UP_GOAL_STATEMENTS) },
      verifies: { type: 'string', default: '20000' }
    }
  })
  const members = numberOption('members', values.members, { min: 2, integer: true })
  const actives = numberOption('actives', values.actives, { min: 1, integer: true })
  const statements = numberOption('statements', values.statements, { min: 1, integer: true })
  const partitions = numberOption('partitions', values.partitions, { min: 1, integer: true })
  const payments = numberOption('payments', values.payments, { min: 0, integer: true })
  const catchUpCount = numberOption('catch-up', values['catch-up'], { min: 0, integer: true })
  const verifyCount = numberOption('verifies', values.verifies, { min: 256, integer: true })
  if (actives > members)
    throw new UsageError(`--actives ${actives}: a pool of ${members} members has at most ${members} actives`)

  process.stderr.write(`BIP340 verifications: ${verifyCount} signatures ...\n`)
  const verifies = verifyRates(verifyCount)
  const caughtUp = catchUpCount === 0 ? null : await catchUp(members, actives, catchUpCount)

  const rates: ApplyRate[] = []
  for (const a of [...new Set([actives, members])]) {
    process.stderr.write(`PoolBoard.apply: ${statements} statements of ${a} actives ...\n`)
    rates.push(applyRate(members, a, statements))
  }
  const trace = values.trace
  const latency = values['skip-cluster'] ? null : await roundLatency('partition', members, actives, partitions, trace)
  const payment =
    values['skip-cluster'] || payments === 0 ? null : await roundLatency('payment', members, actives, payments, trace)

  const rounds: Array<[string, string, NonNullable<typeof latency>]> = []
  if (latency !== null) rounds.push(['partition', `${actives} actives of ${members}`, latency])
  if (payment !== null) rounds.push(['payment', `${members} members`, payment])
  if (rounds.length > 0) {
    process.stdout.write(
      `\nround to accepted (admin API call on the proposer, all online, loopback; a partition is committed and applied, a payment's state too)\n`
    )
    process.stdout.write(
      renderTable(
        ['round', 'pool', 'rounds', 'p50 ms', 'p90 ms', 'p99 ms', 'min ms', 'max ms', 'node CPU ms / round', 'cores'],
        rounds.map(([kind, pool, r]) => [
          kind,
          pool,
          String(r.latencyMs.count),
          withBudget(r.latencyMs.p50, ROUND_P50_BUDGET),
          fmt(r.latencyMs.p90),
          withBudget(r.latencyMs.p99, ROUND_P99_BUDGET),
          fmt(r.latencyMs.min),
          fmt(r.latencyMs.max),
          fmt(r.cpuMsPerRound, 0),
          fmt(r.cpuMsPerRound / r.latencyMs.mean, 2)
        ]),
        { alignRight: [2, 3, 4, 5, 6, 7, 8, 9] }
      ) + '\n'
    )
    process.stdout.write(
      `node CPU: utime + stime of every node over the measured rounds, per round; cores: that over the mean round time (this machine has ${availableParallelism()})\n`
    )
    for (const [kind, , r] of rounds) {
      if (r.timeline === null) continue
      process.stdout.write(`\n${kind} round timeline (ms after the API call; a member's step is the last active's)\n`)
      process.stdout.write(
        renderTable(
          ['step', 'p50 ms', 'p90 ms', 'p99 ms'],
          r.timeline.map((t) => [t.step, fmt(t.ms.p50), fmt(t.ms.p90), fmt(t.ms.p99)]),
          { alignRight: [1, 2, 3] }
        ) + '\n'
      )
    }
  }
  process.stdout.write(
    '\nstatements applied per second by PoolBoard.apply on one thread (every one valid, with all its signatures)\n'
  )
  process.stdout.write(
    renderTable(
      [
        'actives',
        'statements',
        'cold cache /s',
        'cold p50 µs',
        'cold p99 µs',
        'warm cache /s',
        'warm p50 µs',
        'warm p99 µs',
        'signatures verified cold',
        'cache hits warm'
      ],
      rates.map((r) => [
        String(r.actives),
        String(r.statements),
        fmt(r.cold.perS, 0),
        fmt(r.cold.applyUs.p50, 0),
        fmt(r.cold.applyUs.p99, 0),
        fmt(r.warm.perS, 0),
        fmt(r.warm.applyUs.p50, 0),
        fmt(r.warm.applyUs.p99, 0),
        String(r.cold.verified),
        String(r.warm.hits)
      ]),
      { alignRight: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] }
    ) + '\n'
  )
  process.stdout.write(
    `\nBIP340 verifications per second on one core (goal: at least ${fmt(VERIFY_GOAL_PER_S, 0)}/s with the backend in use)\n`
  )
  process.stdout.write(
    renderTable(
      ['backend', 'one by one /s', 'batches of 256 /s', 'goal /s'],
      verifies.map((v) => [v.backend, fmt(v.singlePerS, 0), fmt(v.batchPerS, 0), fmt(VERIFY_GOAL_PER_S, 0)]),
      { alignRight: [1, 2, 3] }
    ) + '\n'
  )
  if (caughtUp !== null) {
    const goalS = (CATCH_UP_GOAL_S * caughtUp.statements) / CATCH_UP_GOAL_STATEMENTS
    process.stdout.write(
      `\na returning member verifies and applies the board's statements (${caughtUp.workers} verification worker${caughtUp.workers === 1 ? '' : 's'} ahead of PoolBoard.apply; goal: ${CATCH_UP_GOAL_STATEMENTS.toLocaleString('en-US')} statements of 3 actives in under ${CATCH_UP_GOAL_S} s)\n`
    )
    process.stdout.write(
      renderTable(
        ['statements', 'actives', 'signatures', 'seconds', 'statements /s', 'goal s'],
        [
          [
            String(caughtUp.statements),
            String(caughtUp.actives),
            String(caughtUp.signatures),
            fmt(caughtUp.seconds, 1),
            fmt(caughtUp.perS, 0),
            fmt(goalS, 1)
          ]
        ],
        { alignRight: [0, 1, 2, 3, 4, 5] }
      ) + '\n'
    )
  }
  process.stdout.write(
    `results: ${writeResult('pool', { members, actives, partitionLatency: latency, paymentLatency: payment, applyRates: rates, verifies, catchUp: caughtUp })}\n`
  )
}
