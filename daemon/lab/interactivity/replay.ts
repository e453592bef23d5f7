import { rmSync } from 'node:fs'
import { AdminClient } from '../../api/client.js'
import { LocalCluster } from '../../cluster/index.js'
import { ensureClusterPool } from '../../cluster/pool.js'
import { Progress } from '../../host/table.js'
import { sleep } from '../../host/wait.js'
import { mixSeed } from '../campaign/plan.js'
import { DEFAULT_BALANCE_SATS, DEFAULT_KICKOUT_DELAY_BLOCKS } from '../../pool/view.js'
import { DEFAULT_MODEL, makeSchedule, runModel, type ModelParams, type PoolOp, type ScheduleEvent } from './model.js'
import { estimate, measure, tQuantile975, type StudyResult } from './study.js'

/**
 * The same schedule on real nodes: 16 node processes, one per member; a member going offline is
 * its node stopped, coming back is its node started; every pool operation the model made is the
 * command a member would run (`pool pay`, `pool partition`, `pool merge`), at its turn. Each must
 * succeed with exactly the members the model had online, and at the end every member's balance on
 * the cluster must be the model's.
 */

export const REPLAY_MEMBERS = 16
export const REPLAY_UPTIME = 0.9
export const REPLAY_HORIZON_MIN = 36 * 60
const START_TIMEOUT_MS = 120_000
const ROUND_TIMEOUT_MS = 20_000
const ATTEMPTS = 3
const RETRY_MS = 2_000

export interface ReplayResult {
  params: ModelParams
  toggles: number
  operations: number
  succeeded: number
  failures: Array<{ op: string; error: string }>
  balancesAgree: boolean
  mismatches: string[]
  /** Off-chain share of the replayed schedule: the model's, and the cluster's (a payment counts if its update succeeded). */
  modelOffChainShare: number
  clusterOffChainShare: number
  payments: number
  durationMs: number
}

export async function replayOnCluster(options: {
  seed: number
  dir: string
  say: (line: string) => void
  keep?: boolean
}): Promise<ReplayResult> {
  const started = Date.now()
  const params: ModelParams = {
    ...DEFAULT_MODEL,
    members: REPLAY_MEMBERS,
    uptime: REPLAY_UPTIME,
    policy: 'partitions',
    seed: mixSeed(options.seed, 0),
    horizonMin: REPLAY_HORIZON_MIN
  }
  const schedule = makeSchedule(params)
  const run = runModel(params, schedule)
  const metrics = measure(run)
  const say = options.say
  say(
    `  replay: n ${params.members}, p ${params.uptime}, ${params.horizonMin / 60} h, policy partitions: ${run.ops.length} operations`
  )
  rmSync(options.dir, { recursive: true, force: true })
  const cluster = new LocalCluster(options.dir, new Progress(false))
  const name = (m: number): string => `node${m + 1}`
  const api = (m: number): AdminClient => AdminClient.fromDataDir(cluster.dataDir(m + 1))
  const failures: ReplayResult['failures'] = []
  let succeeded = 0
  const succeededPayments = new Set<number>()
  let mismatches: string[] = []
  try {
    await cluster.create({ nodes: params.members, lab: false, settings: { 'block-interval-s': '0' } })
    const deadlineMs = Date.now() + START_TIMEOUT_MS
    const pids = Array.from({ length: params.members }, (_, m) => cluster.startNode(m + 1))
    for (let m = 0; m < params.members; m++) await cluster.waitForApi(m + 1, deadlineMs, pids[m])
    await cluster.waitConnected(deadlineMs, 'connecting')
    await ensureClusterPool(cluster, {
      balanceSats: String(DEFAULT_BALANCE_SATS),
      kickoutDelayBlocks: DEFAULT_KICKOUT_DELAY_BLOCKS,
      deadlineMs,
      progress: new Progress(false)
    })
    await Promise.all(
      schedule.initiallyOnline.map(async (on, m) => {
        if (!on) await cluster.signalNode(m + 1, 'SIGTERM')
      })
    )
    // Model pool id → what the cluster calls it, and its members (for who proposes a merge).
    const poolName = new Map<number, string>([[0, 'root']])
    const poolMembers = new Map<number, number[]>([[0, Array.from({ length: params.members }, (_, m) => m)]])
    const online = new Set(schedule.initiallyOnline.flatMap((on, m) => (on ? [m] : [])))
    const steps: Array<{
      t: number
      order: number
      toggle?: Extract<ScheduleEvent, { kind: 'online' | 'offline' }>
      op?: PoolOp
    }> = []
    schedule.events.forEach((e) => {
      if (e.kind !== 'pay') steps.push({ t: e.t, order: 0, toggle: e })
    })
    run.ops.forEach((op) => {
      steps.push({ t: op.t, order: 1, op })
    })
    steps.sort((a, b) => a.t - b.t || a.order - b.order)
    let toggles = 0
    for (const step of steps) {
      if (step.toggle !== undefined) {
        const m = step.toggle.member
        toggles++
        if (step.toggle.kind === 'online') {
          const pid = cluster.startNode(m + 1)
          await cluster.waitForApi(m + 1, Date.now() + START_TIMEOUT_MS, pid)
          await cluster.waitConnected(Date.now() + START_TIMEOUT_MS, `${name(m)} back`)
          online.add(m)
        } else {
          await cluster.signalNode(m + 1, 'SIGTERM')
          online.delete(m)
        }
        continue
      }
      const op = step.op!
      const label = `${op.kind} at ${(op.t / 60).toFixed(2)} h`
      // A node just restarted may not have joined the gossip mesh, or the board may be electing a
      // leader after a stop: the same round is retried (a member signs the same state again).
      const attempt = async <T>(call: () => Promise<T>): Promise<T> => {
        for (let i = 1; ; i++) {
          try {
            return await call()
          } catch (err) {
            if (i >= ATTEMPTS) throw err
            say(`  replay: ${label}, attempt ${i} failed (${(err as Error).message.slice(0, 160)}); again`)
            await sleep(RETRY_MS)
          }
        }
      }
      try {
        if (op.kind === 'update') {
          await attempt(
            async () =>
              await api(op.payer).post(
                '/v1/pool/pay',
                { to: name(op.payee), amountSats: op.amountSats, timeoutMs: ROUND_TIMEOUT_MS },
                { timeoutMs: ROUND_TIMEOUT_MS + 30_000 }
              )
          )
          succeededPayments.add(op.paymentId)
        } else if (op.kind === 'partition') {
          const [proposer, ...others] = op.actives
          const withNames = others.length === 0 ? [name(proposer)] : others.map(name)
          const r = await attempt(
            async () =>
              await api(proposer).post<{ pool: string }>(
                '/v1/pool/partition',
                { with: withNames, timeoutMs: ROUND_TIMEOUT_MS },
                { timeoutMs: ROUND_TIMEOUT_MS + 30_000 }
              )
          )
          poolName.set(op.created, r.pool.replace(/^partition\//, ''))
          poolMembers.set(op.created, op.actives)
        } else if (op.kind === 'merge') {
          const proposer = (poolMembers.get(op.pool) ?? []).find((m) => online.has(m))
          if (proposer === undefined) throw new Error(`no member of model pool ${op.pool} is online`)
          await attempt(
            async () =>
              await api(proposer).post(
                '/v1/pool/merge',
                { pool: poolName.get(op.pool), timeoutMs: ROUND_TIMEOUT_MS },
                { timeoutMs: ROUND_TIMEOUT_MS + 30_000 }
              )
          )
        } else {
          throw new Error('the replay runs the partitions policy: no kick-outs')
        }
        succeeded++
      } catch (err) {
        failures.push({ op: label, error: (err as Error).message })
        say(`  replay: ${label} failed: ${(err as Error).message}`)
      }
      if ((succeeded + failures.length) % 20 === 0)
        say(`  replay: ${succeeded + failures.length}/${run.ops.length} operations, ${toggles} sessions`)
    }
    const reader = [...online][0]
    const status = await api(reader).get<{ balances: Record<string, number> }>('/v1/pool/status?fresh=1', {
      timeoutMs: 10_000
    })
    mismatches = run.finalBalances.flatMap((b, m) =>
      status.balances[name(m)] === b ? [] : [`${name(m)}: model ${b}, cluster ${status.balances[name(m)]}`]
    )
    const counted = run.payments.filter((x) => x.t < params.horizonMin - params.patienceMin)
    const clusterDone = counted.filter((x) => x.delayMin !== null && succeededPayments.has(x.id)).length
    return {
      params,
      toggles,
      operations: run.ops.length,
      succeeded,
      failures,
      balancesAgree: mismatches.length === 0,
      mismatches,
      modelOffChainShare: metrics.offChainShare,
      clusterOffChainShare: counted.length === 0 ? 0 : clusterDone / counted.length,
      payments: counted.length,
      durationMs: Date.now() - started
    }
  } finally {
    await Promise.all(
      Array.from({ length: params.members }, async (_, m) => {
        await cluster.signalNode(m + 1, 'SIGKILL').catch(() => false)
      })
    )
    if (options.keep !== true && failures.length === 0 && mismatches.length === 0)
      rmSync(options.dir, { recursive: true, force: true })
  }
}

/**
 * The replay beside the grid's runs of the same (n, p, policy): the cluster must reproduce the
 * model's outcome on its schedule exactly, and that one run's share is compared with the spread of
 * single runs (a 95% prediction interval: one run, not a mean, is being compared).
 */
export function renderReplay(r: ReplayResult, study: StudyResult): string {
  const runs = study.runs
    .filter((x) => x.members === r.params.members && x.uptime === r.params.uptime && x.policy === 'partitions')
    .map((x) => x.offChainShare)
    .sort((a, b) => a - b)
  const e = estimate(runs)
  const pct = (x: number): string => `${(x * 100).toFixed(1)}%`
  let spread = '  (the grid has no runs for this pool size and uptime)'
  if (e !== null && runs.length > 1) {
    const sd = (e.ci95 * Math.sqrt(runs.length)) / tQuantile975(runs.length - 1)
    const half = tQuantile975(runs.length - 1) * sd * Math.sqrt(1 + 1 / runs.length)
    const lo = Math.max(0, e.mean - half)
    const hi = Math.min(1, e.mean + half)
    const inside = r.clusterOffChainShare >= lo - 1e-9 && r.clusterOffChainShare <= hi + 1e-9
    spread =
      `  the grid's ${runs.length} single runs of n ${r.params.members}, p ${r.params.uptime} (${study.grid.model.horizonMin / 1440} days each): ` +
      `mean ${pct(e.mean)} ± ${pct(e.ci95)}, from ${pct(runs[0])} to ${pct(runs[runs.length - 1])}, 95% prediction interval for one run ${pct(lo)} to ${pct(hi)}: the replay is ${inside ? 'inside' : 'outside'} it`
  }
  return [
    `replay on ${r.params.members} real nodes (p ${r.params.uptime}, ${r.params.horizonMin / 60} h, partitions + merge, seed ${r.params.seed}): ` +
      `${r.succeeded}/${r.operations} operations succeeded with the members the model had online, ${r.toggles} session changes, ${(r.durationMs / 60_000).toFixed(1)} min`,
    `  off chain: model ${pct(r.modelOffChainShare)}, cluster ${pct(r.clusterOffChainShare)} of ${r.payments} payments; ` +
      `final balances ${r.balancesAgree ? 'agree for every member' : `differ: ${r.mismatches.join('; ')}`}`,
    spread,
    ...r.failures.slice(0, 10).map((f) => `  failed: ${f.op}: ${f.error}`)
  ].join('\n')
}
