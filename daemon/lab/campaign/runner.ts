import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { AdminClient, ApiCallError } from '../../api/client.js'
import { LocalCluster } from '../../cluster/index.js'
import { sleep, waitFor } from '../../host/wait.js'
import type { DefenseAlarm, DefenseStatus } from '../../defense/index.js'
import { ensureClusterPool } from '../../cluster/pool.js'
import { DEFAULT_BALANCE_SATS, DEFAULT_KICKOUT_DELAY_BLOCKS } from '../../pool/view.js'
import { Progress } from '../../host/table.js'
import { dropStatement } from './drop.js'
import { defenseSettings, runDirName, type RunPlan } from './plan.js'

/**
 * Plays one coalition-drop run on a real local cluster of node processes (docs/lab.md):
 *
 *  1. cluster up with the pool, every node in lab mode, the honest ones with the run's defenses;
 *  2. C stops;
 *  3. A partitions with B: statement S1 is committed and applied;
 *  4. the coalition (A and k - 1 others) stops, drops S1 from its logs offline, starts again, and
 *     one of its members is made to lead (`board transfer`);
 *  5. C comes back and catches up;
 *  6. A offers C a partition spending A's Withdraw output again (`lab equivocate`), S2;
 *  7. who signed, who accepted what, and every defense's detections are collected.
 *
 * C is fooled if it signs S2. The cluster is torn down after the run (kept on error, or with
 * `keep`, for its logs).
 */

export interface Detection {
  node: string
  /** B, C, or honest (another honest member). */
  role: 'B' | 'C' | 'honest'
  defense: DefenseAlarm['defense']
  how: DefenseAlarm['how']
  /** Relative to A's offer of S2 (negative: before it). */
  atMs: number
  message: string
}

export interface RunRecord {
  run: number
  seed: number
  replay: string
  members: number
  defense: RunPlan['defense']
  cast: { a: string; b: string; c: string }
  coalition: { size: number; members: string[]; leader: string | null; led: boolean; leaderAtOffer: string | null }
  holdersOffline: string[]
  answerOrder: string[]
  s1: { statementId: string; index: number } | null
  s2: {
    statementId: string | null
    outcome: string
    message: string | null
    signed: string[]
    refusals: Array<{ member: string; code: string; reason: string }>
  } | null
  /** C signed S2. */
  fooled: boolean
  /** S2 is an accepted partition on C's board. */
  acceptedByC: boolean
  /** Honest members whose board holds S2 as accepted (C aside). */
  acceptedByHonest: string[]
  cRefusal: { code: string; reason: string } | null
  cCaughtUp: boolean
  /** Detections by honest nodes (detected or refused), earliest first. */
  detections: Detection[]
  /** What honest nodes learned from others' proofs or evidence. */
  learned: Detection[]
  /** Milliseconds from the run's start. */
  timeline: Record<string, number>
  durationMs: number
  error: string | null
}

const START_TIMEOUT_MS = 60_000
const PARTITION_TIMEOUT_MS = 10_000
const EQUIVOCATE_TIMEOUT_MS = 6_000
const TRANSFER_WAIT_MS = 3_000
const TRANSFER_ATTEMPTS = 4
const CATCH_UP_WAIT_MS = 8_000
/** After the offer: how long detections are collected. */
const OBSERVE_MS = 1_000
const HTTP_SLACK_MS = 30_000

interface BoardStatusView {
  role: string
  leader: { name: string | null } | null
  commit: number
  applied: number
}

/** Runs `plan` in a fresh cluster under `workDir`; never throws (a failed run is a record with `error`). */
export async function playRun(
  plan: RunPlan,
  workDir: string,
  options: { keep: boolean; onStep?: (step: string, record: RunRecord) => void }
): Promise<RunRecord> {
  const startMs = Date.now()
  const timeline: Record<string, number> = {}
  const mark = (step: string): void => {
    timeline[step] = Date.now() - startMs
    options.onStep?.(step, record)
  }
  const n = Object.keys(plan.answerDelayMs).length
  const record: RunRecord = {
    run: plan.run,
    seed: plan.seed,
    replay: plan.replay,
    members: n,
    defense: plan.defense,
    cast: { a: plan.a, b: plan.b, c: plan.c },
    coalition: {
      size: plan.coalitionSize,
      members: plan.coalition,
      leader: plan.leader,
      led: false,
      leaderAtOffer: null
    },
    holdersOffline: [],
    answerOrder: plan.answerOrder,
    s1: null,
    s2: null,
    fooled: false,
    acceptedByC: false,
    acceptedByHonest: [],
    cRefusal: null,
    cCaughtUp: false,
    detections: [],
    learned: [],
    timeline,
    durationMs: 0,
    error: null
  }
  const dir = join(workDir, runDirName(plan.run))
  rmSync(dir, { recursive: true, force: true })
  const cluster = new LocalCluster(dir, new Progress(false))
  const index = (name: string): number => Number(name.replace(/^node/, ''))
  const api = (name: string): AdminClient => AdminClient.fromDataDir(cluster.dataDir(index(name)))
  const names = Array.from({ length: n }, (_, i) => `node${i + 1}`)
  const running = new Set<string>()
  let offerAtMs = 0
  try {
    // 1. the cluster and its pool
    await cluster.create({
      nodes: n,
      lab: true,
      settings: { 'block-interval-s': '0', ...defenseSettings(plan.defense) }
    })
    for (const name of names) {
      const d = cluster.dataDir(index(name))
      d.writeConfig({ ...d.readConfig(), labAnswerDelayMs: plan.answerDelayMs[name] })
    }
    await startNodes(cluster, names, running)
    await ensureClusterPool(cluster, {
      balanceSats: String(DEFAULT_BALANCE_SATS),
      kickoutDelayBlocks: DEFAULT_KICKOUT_DELAY_BLOCKS,
      deadlineMs: Date.now() + START_TIMEOUT_MS,
      progress: new Progress(false)
    })
    mark('pool created')

    // 2. C goes offline
    await stopNodes(cluster, [plan.c], running)
    mark('C stopped')

    // 3. A partitions with B: S1 (once the others agree on a leader: C may have led)
    await waitAgreedLeader([...running], api)
    const s1 = await api(plan.a).post<{ statementId: string; index: number }>(
      '/v1/pool/partition',
      { with: [plan.b], timeoutMs: PARTITION_TIMEOUT_MS },
      { timeoutMs: PARTITION_TIMEOUT_MS + HTTP_SLACK_MS }
    )
    record.s1 = { statementId: s1.statementId, index: s1.index }
    await waitFor(`every running node to apply S1 (index ${s1.index})`, async () => {
      const all = await Promise.all(
        [...running].map(async (name) => (await boardStatus(api(name))).applied >= s1.index)
      )
      return all.every((x) => x)
    })
    mark('S1 applied')

    // 4. the coalition drops S1 and takes the lead
    if (plan.coalition.length > 0) {
      await stopNodes(cluster, plan.coalition, running)
      for (const name of plan.coalition) await dropStatement(cluster.dataDir(index(name)).path, s1.statementId)
      mark('S1 dropped')
      await startNodes(cluster, plan.coalition, running)
      mark('coalition back')
      record.coalition.led = await makeLead(plan.leader!, [...running], api)
      mark('coalition leads')
    }
    if (plan.holdersOffline) {
      // Every honest member that holds S1 (all but C) goes offline: nobody is left to tell C.
      const holders = names.filter((x) => x !== plan.c && !plan.coalition.includes(x))
      await stopNodes(cluster, holders, running)
      record.holdersOffline = holders
      mark('holders stopped')
    }

    // 5. C comes back and catches up
    await startNodes(cluster, [plan.c], running)
    record.cCaughtUp = await waitCaughtUp(plan.c, [...running], api)
    mark('C caught up')

    // 6. A offers C a partition spending A's Withdraw output again
    record.coalition.leaderAtOffer = await currentLeader([...running], api)
    offerAtMs = Date.now()
    mark('S2 offered')
    type Offer = {
      outcome: string
      statementId?: string
      signed?: string[]
      refusals?: Array<{ member: string; code: string; reason: string }>
      message?: string
    }
    const r = await api(plan.a)
      .post<Offer>(
        '/v1/lab/equivocate',
        { with: [plan.c], timeoutMs: EQUIVOCATE_TIMEOUT_MS },
        { timeoutMs: EQUIVOCATE_TIMEOUT_MS + HTTP_SLACK_MS }
      )
      .catch((err: unknown): Offer => {
        // A could not even offer it (no usable board, say): C signed nothing.
        if (err instanceof ApiCallError) return { outcome: 'not offered', message: err.message }
        throw err
      })
    mark('S2 answered')
    const signed = r.outcome === 'accepted' || r.outcome === 'rejected' ? [plan.a, plan.c] : (r.signed ?? [])
    record.s2 = {
      statementId: r.statementId ?? null,
      outcome: r.outcome,
      message: r.message ?? null,
      signed,
      refusals: r.refusals ?? []
    }
    record.fooled = signed.includes(plan.c)
    const refusal = record.s2.refusals.find((f) => f.member === plan.c)
    record.cRefusal = refusal === undefined ? null : { code: refusal.code, reason: refusal.reason }

    // 7. what everyone saw
    await sleep(OBSERVE_MS)
    const honest = [...running].filter((x) => !plan.coalition.includes(x))
    const s2Ref = r.statementId === undefined ? null : `partition/${r.statementId}`
    for (const name of honest) {
      const defense = await api(name).get<DefenseStatus>('/v1/defense')
      const role = name === plan.b ? 'B' : name === plan.c ? 'C' : 'honest'
      for (const a of defense.alarms) {
        const d: Detection = {
          node: name,
          role,
          defense: a.defense,
          how: a.how,
          atMs: a.atMs - offerAtMs,
          message: a.message
        }
        if (a.how === 'learned') record.learned.push(d)
        else record.detections.push(d)
      }
      if (s2Ref !== null) {
        const status = await api(name).get<{ partitions: Array<{ ref: string }> }>('/v1/pool/status')
        const accepted = status.partitions.some((p) => p.ref === s2Ref)
        if (name === plan.c) record.acceptedByC = accepted
        else if (accepted) record.acceptedByHonest.push(name)
      }
    }
    record.detections.sort((x, y) => x.atMs - y.atMs)
    record.learned.sort((x, y) => x.atMs - y.atMs)
  } catch (err) {
    record.error = (err as Error).message.replace(/\s*\n\s*/g, ' ')
  } finally {
    await Promise.all(
      names.map(async (name) => {
        await cluster.signalNode(index(name), 'SIGKILL').catch(() => false)
      })
    )
    mark('torn down')
    if (record.error === null && !options.keep) rmSync(dir, { recursive: true, force: true })
  }
  record.durationMs = Date.now() - startMs
  return record
}

async function startNodes(cluster: LocalCluster, names: string[], running: Set<string>): Promise<void> {
  const deadlineMs = Date.now() + START_TIMEOUT_MS
  const started = names.map((name) => ({
    name,
    i: Number(name.slice(4)),
    pid: cluster.startNode(Number(name.slice(4)))
  }))
  for (const s of started) {
    await cluster.waitForApi(s.i, deadlineMs, s.pid)
    running.add(s.name)
  }
  await cluster.waitConnected(deadlineMs, 'connecting')
}

async function stopNodes(cluster: LocalCluster, names: string[], running: Set<string>): Promise<void> {
  await Promise.all(
    names.map(async (name) => {
      await cluster.signalNode(Number(name.slice(4)), 'SIGTERM')
    })
  )
  for (const name of names) running.delete(name)
}

async function boardStatus(client: AdminClient): Promise<BoardStatusView> {
  return await client.get<BoardStatusView>('/v1/board/status', { timeoutMs: 3_000 })
}

async function currentLeader(names: string[], api: (name: string) => AdminClient): Promise<string | null> {
  for (const name of names) {
    try {
      if ((await boardStatus(api(name))).role === 'leader') return name
    } catch {
      /* starting */
    }
  }
  return null
}

/** Waits until every node in `names` follows the same leader. */
async function waitAgreedLeader(names: string[], api: (name: string) => AdminClient): Promise<string> {
  return await waitFor('the running nodes to agree on a board leader', async () => {
    const leaders = await Promise.all(names.map(async (name) => (await boardStatus(api(name))).leader?.name ?? null))
    // A leader that was just stopped is still followed until the election timeout: it must be running.
    return leaders[0] !== null && names.includes(leaders[0]) && leaders.every((l) => l === leaders[0])
      ? leaders[0]
      : undefined
  })
}

/** Hands the board's leadership to `target` (a coalition member); false if it did not take it. */
async function makeLead(target: string, names: string[], api: (name: string) => AdminClient): Promise<boolean> {
  for (let attempt = 0; attempt < TRANSFER_ATTEMPTS; attempt++) {
    const leader = await waitFor('a board leader', async () => (await currentLeader(names, api)) ?? undefined).catch(
      () => null
    )
    if (leader === target) return true
    if (leader === null) continue
    // A leader hands over only to a member that follows it and holds its whole log.
    await waitFor(
      `${target} to follow ${leader}`,
      async () => {
        const [l, t] = await Promise.all([boardStatus(api(leader)), boardStatus(api(target))])
        return t.leader?.name === leader && t.applied >= l.commit
      },
      TRANSFER_WAIT_MS
    ).catch(() => false)
    await api(leader)
      .post('/v1/board/transfer', { to: target })
      .catch(() => undefined)
    const led = await waitFor(
      `${target} to lead`,
      async () => (await boardStatus(api(target))).role === 'leader',
      TRANSFER_WAIT_MS
    ).catch(() => false)
    if (led) return true
  }
  return false
}

/** Waits until `c` has applied what the leader has committed; false if it did not in time. */
async function waitCaughtUp(c: string, names: string[], api: (name: string) => AdminClient): Promise<boolean> {
  return await waitFor(
    `${c} to catch up`,
    async () => {
      const leader = await currentLeader(names, api)
      if (leader === null) return false
      const [target, mine] = await Promise.all([boardStatus(api(leader)), boardStatus(api(c))])
      return mine.applied >= target.commit && mine.leader !== null
    },
    CATCH_UP_WAIT_MS
  ).catch(() => false)
}
