import assert from 'node:assert/strict'
import { mixSeed, Prng } from '../campaign/plan.js'

/**
 * The interactivity study's model (docs/interactivity.md): members online in sessions, paying one
 * another, and a pool that moves by the rules of protocol/ and board/ under one of four policies:
 *
 * - `unanimity`: a payment waits until every member of its pool is online;
 * - `kickout`: the same, and a member offline for X blocks is kicked out (its funds leave on chain,
 *   the others go on in the continuation);
 * - `partitions`: when its pool is not all online, the online members whose funds are in it
 *   partition it among themselves (nested, as often as needed), and a frozen pool whose members are
 *   all online again is merged back;
 * - `partitions-kickout`: both.
 *
 * Pure: time is a number of minutes, randomness comes from the seed, and the same parameters give
 * the same run. The schedule (sessions and payments) depends on the seed, the members and the
 * uptime only, so every policy sees the same one. Every pool operation is logged (`ops`) so that
 * it can be replayed on the real PoolBoard (board-check.ts) or a real cluster (replay.ts).
 */

export const POLICIES = ['unanimity', 'kickout', 'partitions', 'partitions-kickout'] as const
export type Policy = (typeof POLICIES)[number]

export interface ModelParams {
  members: number
  /** Mean share of the time a member is online (p). */
  uptime: number
  policy: Policy
  seed: number
  /** Length of the run. */
  horizonMin: number
  /** Mean length of one online session plus one offline session (both exponential). */
  cycleMin: number
  /** Payments each member starts per day (a Poisson process), to a uniformly random other member. */
  paymentsPerDay: number
  /** A payment not completed within this long is given up (it would go on chain, or not at all). */
  patienceMin: number
  /** X: a member offline this many blocks may be kicked out (kick-out policies). */
  kickoutDelayBlocks: number
  /** Minutes per block. */
  blockMin: number
  /** How often the pool tree is sampled. */
  sampleMin: number
  /** Every member's starting balance. */
  balanceSats: number
}

export const DEFAULT_MODEL: Omit<ModelParams, 'members' | 'uptime' | 'policy' | 'seed'> = {
  horizonMin: 7 * 24 * 60,
  cycleMin: 24 * 60,
  paymentsPerDay: 4,
  patienceMin: 24 * 60,
  kickoutDelayBlocks: 144,
  blockMin: 10,
  sampleMin: 60,
  balanceSats: 100_000
}

/** Largest pool the model runs (the board's limit after issue 13 is 1,024). */
export const MAX_MODEL_MEMBERS = 1_024

export type ScheduleEvent =
  | { t: number; kind: 'online' | 'offline'; member: number }
  | { t: number; kind: 'pay'; id: number; payer: number; payee: number; amountSats: number }

export interface Schedule {
  /** Whether each member is online at time 0. */
  initiallyOnline: boolean[]
  /** Sorted by time, then by the order made. */
  events: ScheduleEvent[]
}

/** The sessions and payments of a run: the same for every policy. */
export function makeSchedule(
  p: Pick<ModelParams, 'members' | 'uptime' | 'seed' | 'horizonMin' | 'cycleMin' | 'paymentsPerDay'>
): Schedule {
  assert(
    Number.isInteger(p.members) && p.members >= 2 && p.members <= MAX_MODEL_MEMBERS,
    `members must be within 2..${MAX_MODEL_MEMBERS}`
  )
  assert(p.uptime > 0 && p.uptime <= 1, 'uptime must be within (0, 1]')
  const events: ScheduleEvent[] = []
  const initiallyOnline: boolean[] = []
  const onMean = p.uptime * p.cycleMin
  const offMean = (1 - p.uptime) * p.cycleMin
  for (let m = 0; m < p.members; m++) {
    // One stream per member: adding members does not change the others' sessions.
    const rng = new Prng(mixSeed(p.seed, m + 1))
    let online = rng.next() < p.uptime
    initiallyOnline.push(online)
    if (offMean === 0) continue
    // Exponential sessions are memoryless: the first one from time 0 has the same law.
    let t = exponential(rng, online ? onMean : offMean)
    while (t < p.horizonMin) {
      online = !online
      events.push({ t, kind: online ? 'online' : 'offline', member: m })
      t += exponential(rng, online ? onMean : offMean)
    }
  }
  const rng = new Prng(mixSeed(p.seed, 0))
  const ratePerMin = (p.members * p.paymentsPerDay) / (24 * 60)
  let id = 0
  for (let t = exponential(rng, 1 / ratePerMin); t < p.horizonMin; t += exponential(rng, 1 / ratePerMin)) {
    const payer = rng.int(p.members)
    const payee = (payer + 1 + rng.int(p.members - 1)) % p.members
    events.push({ t, kind: 'pay', id: id++, payer, payee, amountSats: 1 + rng.int(1_000) })
  }
  // Stable: equal times keep the order made (sessions by member, then payments).
  events.sort((a, b) => a.t - b.t)
  return { initiallyOnline, events }
}

function exponential(rng: Prng, mean: number): number {
  return -mean * Math.log(1 - rng.next())
}

// ---- the pool tree ----

export type PoolStatus = 'open' | 'frozen' | 'closed' | 'merged'

interface Pool {
  id: number
  /** Root (-1 parent), a partition of `parent`, or the continuation of `parent` after a kick-out. */
  kind: 'root' | 'partition' | 'continuation'
  parent: number
  /** Everyone whose funds are in it or under it. */
  members: number[]
  status: PoolStatus
  stateNumber: number
  /** Block height of the current state (its kick-outs are valid from T + X + 1). */
  heightT: number
  /** Members of `members` online now. */
  online: number
  /** A kick-out closed a pool under it: it can never be merged (its total left the pool). */
  blocked: boolean
}

/** One pool operation, as the board would see it (members by index; pools by model id). */
export type PoolOp =
  | {
      t: number
      kind: 'update'
      pool: number
      payer: number
      payee: number
      amountSats: number
      heightT: number
      paymentId: number
    }
  | { t: number; kind: 'partition'; pool: number; created: number; actives: number[]; heightT: number }
  | { t: number; kind: 'merge'; pool: number; folded: number[]; heightT: number }
  | { t: number; kind: 'kickout'; pool: number; member: number; created: number | null; height: number }

export interface PaymentOutcome {
  id: number
  t: number
  payer: number
  payee: number
  /** Minutes from the payment's start until its state was final, or null if given up. */
  delayMin: number | null
  /** Why it was given up. */
  failure: 'patience' | 'kicked' | 'funds' | null
}

export interface Sample {
  t: number
  openPools: number
  /** Sizes (members holding funds there) of the open pools. */
  openSizes: number[]
  frozenPools: number
  /** Share of the pool's funds whose pool is frozen (they cannot move until a merge). */
  frozenFundsShare: number
  /** Share of the funds that left on chain by kick-outs. */
  kickedFundsShare: number
}

export interface ExitFootprint {
  /** Transactions on chain once every member exited now (graph transactions and their fee children), kick-outs' included. */
  transactions: number
  vbytes: number
  /** Graph transactions above TRUC's 10,000 vB (they would not relay as version 3). */
  overTrucLimit: number
  /** Of those, already on chain: what the kick-outs published (their pools' branches and every branch above them). */
  kickoutTransactions: number
  kickoutVbytes: number
}

export interface RunResult {
  params: ModelParams
  payments: PaymentOutcome[]
  samples: Sample[]
  ops: PoolOp[]
  exit: ExitFootprint
  /** Balances where each member's funds are at the end (0 once kicked out), and what left on chain. */
  finalBalances: number[]
  onChainSats: number[]
  /** Highest state number any pool reached (the graph allows D^L = 512 per pool). */
  maxStateNumber: number
}

interface Member {
  online: boolean
  /** Pools from the root down to the one holding its funds; empty once kicked out. */
  path: number[]
  balanceSats: number
  offlineSinceMin: number
}

interface Pending {
  id: number
  t: number
  payer: number
  payee: number
  amountSats: number
}

/** Runs one policy on one schedule. */
export function runModel(params: ModelParams, schedule: Schedule = makeSchedule(params)): RunResult {
  return new Run(params, schedule).run()
}

class Run {
  private readonly pools: Pool[] = []
  private readonly members: Member[] = []
  /** Waiting payments by id, in the order they started (so the oldest expire first). */
  private readonly pending = new Map<number, Pending>()
  /** Ids of the waiting payments each member pays or is paid by. */
  private readonly pendingOf: Array<Set<number>> = []
  private readonly payments: PaymentOutcome[] = []
  private readonly samples: Sample[] = []
  private readonly ops: PoolOp[] = []
  private readonly onChain: number[]
  /** Kick checks: member, the time its offline session started, when to check. */
  private kickChecks: Array<{ t: number; member: number; since: number }> = []
  private nowMin = 0
  private readonly partitions: boolean
  private readonly kickouts: boolean
  private readonly total: number

  constructor(
    private readonly p: ModelParams,
    private readonly schedule: Schedule
  ) {
    assert(schedule.initiallyOnline.length === p.members, 'the schedule is for another pool size')
    this.partitions = p.policy === 'partitions' || p.policy === 'partitions-kickout'
    this.kickouts = p.policy === 'kickout' || p.policy === 'partitions-kickout'
    const all = Array.from({ length: p.members }, (_, i) => i)
    this.pools.push({
      id: 0,
      kind: 'root',
      parent: -1,
      members: all,
      status: 'open',
      stateNumber: 0,
      heightT: 0,
      online: 0,
      blocked: false
    })
    for (let m = 0; m < p.members; m++) {
      const online = schedule.initiallyOnline[m]
      this.members.push({ online, path: [0], balanceSats: p.balanceSats, offlineSinceMin: 0 })
      if (online) this.pools[0].online++
      else this.scheduleKickCheck(m, 0)
    }
    this.onChain = new Array<number>(p.members).fill(0)
    for (let m = 0; m < p.members; m++) this.pendingOf.push(new Set())
    this.total = p.members * p.balanceSats
  }

  run(): RunResult {
    let nextSample = 0
    for (const e of this.schedule.events) {
      while (nextSample <= e.t) {
        this.advance(nextSample)
        this.sample(nextSample)
        nextSample += this.p.sampleMin
      }
      this.advance(e.t)
      if (e.kind === 'pay') {
        const q = { id: e.id, t: e.t, payer: e.payer, payee: e.payee, amountSats: e.amountSats }
        if (!this.tryPay(q)) this.wait(q)
      } else {
        this.toggle(e.member, e.kind === 'online')
      }
    }
    while (nextSample <= this.p.horizonMin) {
      this.advance(nextSample)
      this.sample(nextSample)
      nextSample += this.p.sampleMin
    }
    this.advance(this.p.horizonMin)
    // What is still waiting at the end is counted as given up only if its patience ran out.
    for (const q of this.pending.values()) if (this.p.horizonMin - q.t >= this.p.patienceMin) this.fail(q, 'patience')
    this.payments.sort((a, b) => a.id - b.id)
    return {
      params: this.p,
      payments: this.payments,
      samples: this.samples,
      ops: this.ops,
      exit: this.exitFootprint(),
      finalBalances: this.members.map((m) => (m.path.length === 0 ? 0 : m.balanceSats)),
      onChainSats: [...this.onChain],
      maxStateNumber: Math.max(...this.pools.map((x) => x.stateNumber))
    }
  }

  /** Moves the clock to `t`: kick checks and patience that ran out before it. */
  private advance(t: number): void {
    for (;;) {
      const due = this.kickChecks.filter((k) => k.t <= t).sort((a, b) => a.t - b.t || a.member - b.member)[0]
      if (due === undefined) break
      this.kickChecks = this.kickChecks.filter((k) => k !== due)
      this.nowMin = due.t
      this.expire()
      this.kickCheck(due.member, due.since)
    }
    this.nowMin = t
    this.expire()
  }

  private expire(): void {
    for (const q of this.pending.values()) {
      if (this.nowMin - q.t < this.p.patienceMin) break // oldest first
      this.unwait(q)
      this.fail(q, 'patience')
    }
  }

  private wait(q: Pending): void {
    this.pending.set(q.id, q)
    this.pendingOf[q.payer].add(q.id)
    this.pendingOf[q.payee].add(q.id)
  }

  private unwait(q: Pending): void {
    this.pending.delete(q.id)
    this.pendingOf[q.payer].delete(q.id)
    this.pendingOf[q.payee].delete(q.id)
  }

  private fail(q: Pending, failure: PaymentOutcome['failure']): void {
    this.payments.push({ id: q.id, t: q.t, payer: q.payer, payee: q.payee, delayMin: null, failure })
  }

  private height(): number {
    return Math.floor(this.nowMin / this.p.blockMin)
  }

  private home(m: number): Pool | undefined {
    const path = this.members[m].path
    return path.length === 0 ? undefined : this.pools[path[path.length - 1]]
  }

  private toggle(m: number, online: boolean): void {
    const member = this.members[m]
    if (member.online === online) return
    member.online = online
    for (const id of member.path) this.pools[id].online += online ? 1 : -1
    if (!online) {
      member.offlineSinceMin = this.nowMin
      this.scheduleKickCheck(m, this.nowMin)
      return
    }
    // A payment waits for its payer and payee to be online in one pool that can sign: only a merge,
    // or this member completing its pool, changes that for payments that do not involve this member.
    const merged = this.partitions && this.tryMerge(m)
    const home = this.home(m)
    const complete = home !== undefined && home.status === 'open' && home.online === home.members.length
    this.tryPending(merged || complete ? undefined : m)
  }

  // ---- payments ----

  /** Tries the waiting payments in the order they started (only those `member` pays or is paid by, when given). */
  private tryPending(member?: number): void {
    const ids = member === undefined ? [...this.pending.keys()] : [...this.pendingOf[member]].sort((a, b) => a - b)
    for (const id of ids) {
      const q = this.pending.get(id)
      if (q !== undefined && this.tryPay(q)) this.unwait(q)
    }
  }

  /** True once the payment is settled (made, or given up for good). */
  private tryPay(q: Pending): boolean {
    const payer = this.members[q.payer]
    const payee = this.members[q.payee]
    if (payer.path.length === 0 || payee.path.length === 0) {
      this.fail(q, 'kicked')
      return true
    }
    if (!payer.online || !payee.online) return false
    const home = this.home(q.payer)!
    if (home !== this.home(q.payee)) return false // in different pools: only a merge brings them together
    if (payer.balanceSats < q.amountSats) {
      this.fail(q, 'funds')
      return true
    }
    let pool = home
    // An open pool's members all hold their funds in it (a partition freezes it).
    if (pool.status !== 'open' || pool.online < pool.members.length) {
      if (!this.partitions) return false
      pool = this.partition(home)
    }
    assert(
      pool.status === 'open' && pool.online === pool.members.length,
      'a payment is signed by every member of its pool'
    )
    payer.balanceSats -= q.amountSats
    payee.balanceSats += q.amountSats
    pool.stateNumber++
    pool.heightT = Math.max(pool.heightT, this.height())
    this.ops.push({
      t: this.nowMin,
      kind: 'update',
      pool: pool.id,
      payer: q.payer,
      payee: q.payee,
      amountSats: q.amountSats,
      heightT: pool.heightT,
      paymentId: q.id
    })
    this.payments.push({ id: q.id, t: q.t, payer: q.payer, payee: q.payee, delayMin: this.nowMin - q.t, failure: null })
    return true
  }

  /** Members whose funds are in `pool` itself (not moved on into a partition of it). */
  private holders(pool: Pool): number[] {
    return pool.members.filter((m) => this.home(m) === pool)
  }

  /** Partitions `parent` among its online holders; returns the new pool. */
  private partition(parent: Pool): Pool {
    const actives = this.holders(parent).filter((m) => this.members[m].online)
    assert(actives.length >= 1)
    const heightT = Math.max(parent.heightT, this.height())
    const sub: Pool = {
      id: this.pools.length,
      kind: 'partition',
      parent: parent.id,
      members: actives,
      status: 'open',
      stateNumber: 0,
      heightT,
      online: actives.length,
      blocked: false
    }
    this.pools.push(sub)
    for (const m of actives) this.members[m].path.push(sub.id)
    if (parent.status === 'open') parent.status = 'frozen'
    this.ops.push({
      t: this.nowMin,
      kind: 'partition',
      pool: parent.id,
      created: sub.id,
      actives: [...actives],
      heightT
    })
    return sub
  }

  // ---- merging ----

  /** Merges the topmost frozen pool above `m` whose members are all online again; true if it did. */
  private tryMerge(m: number): boolean {
    for (const id of this.members[m].path) {
      const pool = this.pools[id]
      if (pool.status !== 'frozen' || pool.blocked || pool.online < pool.members.length) continue
      const folded = this.pools.filter(
        (x) => (x.status === 'open' || x.status === 'frozen') && x.id !== pool.id && this.isUnder(x, pool.id)
      )
      for (const x of folded) x.status = 'merged'
      for (const u of pool.members) {
        const path = this.members[u].path
        path.length = path.indexOf(pool.id) + 1
      }
      // The merged pools' online counts no longer matter: nobody's path holds them.
      pool.status = 'open'
      pool.stateNumber++
      pool.heightT = Math.max(pool.heightT, this.height())
      this.ops.push({
        t: this.nowMin,
        kind: 'merge',
        pool: pool.id,
        folded: folded.map((x) => x.id),
        heightT: pool.heightT
      })
      return true
    }
    return false
  }

  private isUnder(x: Pool, ancestor: number): boolean {
    for (let p = x.parent; p >= 0; p = this.pools[p].parent) if (p === ancestor) return true
    return false
  }

  // ---- kick-outs ----

  private scheduleKickCheck(m: number, since: number): void {
    if (!this.kickouts) return
    this.kickChecks.push({ t: since + this.p.kickoutDelayBlocks * this.p.blockMin, member: m, since })
  }

  private kickCheck(m: number, since: number): void {
    const member = this.members[m]
    if (member.online || member.offlineSinceMin !== since || member.path.length === 0) return
    const pool = this.home(m)!
    // A frozen pool cannot be kicked out of; K(N,u) is valid from T + X + 1.
    const validFrom = pool.heightT + this.p.kickoutDelayBlocks + 1
    if (pool.status !== 'open' || this.height() < validFrom) {
      const retry =
        pool.status !== 'open' ? this.nowMin + this.p.kickoutDelayBlocks * this.p.blockMin : validFrom * this.p.blockMin
      if (retry < this.p.horizonMin) this.kickChecks.push({ t: retry, member: m, since })
      return
    }
    this.kick(m, pool)
  }

  private kick(m: number, pool: Pool): void {
    const rest = pool.members.filter((u) => u !== m)
    pool.status = 'closed'
    for (let p = pool.parent; p >= 0; p = this.pools[p].parent) this.pools[p].blocked = true
    pool.blocked = true
    let created: number | null = null
    const restSats = rest.reduce((a, u) => a + this.members[u].balanceSats, 0)
    if (rest.length > 0 && restSats > 0) {
      const cont: Pool = {
        id: this.pools.length,
        kind: 'continuation',
        parent: pool.id,
        members: rest,
        status: 'open',
        stateNumber: 0,
        heightT: this.height(),
        online: rest.filter((u) => this.members[u].online).length,
        blocked: false
      }
      this.pools.push(cont)
      created = cont.id
      for (const u of rest) this.members[u].path.push(cont.id)
    } else {
      for (const u of rest) this.members[u].path = []
    }
    this.onChain[m] += this.members[m].balanceSats
    this.members[m].balanceSats = 0
    this.members[m].path = []
    this.ops.push({ t: this.nowMin, kind: 'kickout', pool: pool.id, member: m, created, height: this.height() })
    // Payments to or from the kicked member can never complete off chain.
    for (const id of [...this.pendingOf[m]]) {
      const q = this.pending.get(id)!
      this.unwait(q)
      this.fail(q, 'kicked')
    }
  }

  // ---- measurements ----

  private sample(t: number): void {
    const open = this.pools.filter((x) => x.status === 'open')
    const openSizes = open.map((x) => this.holders(x).length).filter((k) => k > 0)
    let frozenSats = 0
    for (const m of this.members) {
      if (m.path.length === 0) continue
      if (this.pools[m.path[m.path.length - 1]].status === 'frozen') frozenSats += m.balanceSats
    }
    const kicked = this.onChain.reduce((a, b) => a + b, 0)
    this.samples.push({
      t,
      openPools: openSizes.length,
      openSizes,
      frozenPools: this.pools.filter((x) => x.status === 'frozen').length,
      frozenFundsShare: frozenSats / this.total,
      kickedFundsShare: kicked / this.total
    })
  }

  /**
   * Every pool not merged away has a branch: its partition transaction (for a partition; a
   * continuation is funded by its parent's kick-out), its kickoff and L layers, then its state (or,
   * once kicked out of, the kick-out). Each graph transaction comes with one fee child.
   */
  private exitFootprint(): ExitFootprint {
    const out: ExitFootprint = {
      transactions: 0,
      vbytes: 0,
      overTrucLimit: 0,
      kickoutTransactions: 0,
      kickoutVbytes: 0
    }
    const published = new Set<number>()
    for (const pool of this.pools) {
      if (pool.status !== 'closed') continue
      for (let p = pool.id; p >= 0 && !published.has(p); p = this.pools[p].parent) published.add(p)
    }
    for (const pool of this.pools) {
      if (pool.status === 'merged') continue
      const branch: number[] = []
      if (pool.kind === 'partition') branch.push(partitionVbytes(pool.members.length))
      branch.push(GRAPH_VBYTES.kickoff)
      for (let i = 0; i < GRAPH_LAYERS; i++) branch.push(GRAPH_VBYTES.layer)
      branch.push(pool.status === 'closed' ? GRAPH_VBYTES.kickout : stateVbytes(pool.members.length))
      for (const vb of branch) {
        out.transactions += 2
        out.vbytes += vb + GRAPH_VBYTES.feeChild
        if (vb > TRUC_MAX_VBYTES) out.overTrucLimit++
        if (published.has(pool.id)) {
          out.kickoutTransactions += 2
          out.kickoutVbytes += vb + GRAPH_VBYTES.feeChild
        }
      }
    }
    return out
  }
}

// ---- the transaction graph (docs/protocol.md, "Transactions on chain") ----

/** Decker-Wattenhofer layers behind each kickoff (GraphParams' default L = 3). */
export const GRAPH_LAYERS = 3
/** TRUC's largest version 3 transaction. */
export const TRUC_MAX_VBYTES = 10_000

/**
 * Virtual sizes of the graph's transactions, from their shapes: 10.5 vB of overhead (version,
 * locktime, counts, segwit marker), 57.5 vB per key-path P2TR input (41 bytes and a 66-byte
 * witness), 43 vB per P2TR output, 13 vB for the P2A anchor; and the fee child each one needs
 * (one P2A input, one wallet key-path input, one P2TR output).
 */
export const GRAPH_VBYTES = {
  kickoff: 10.5 + 57.5 + 43 + 13,
  layer: 10.5 + 57.5 + 43 + 13,
  kickout: 10.5 + 57.5 + 43 + 43 + 13,
  feeChild: 10.5 + 41.25 + 57.5 + 43
}

/** state(N): one input, one output per member, the anchor. */
export function stateVbytes(members: number): number {
  return 10.5 + 57.5 + 43 * members + 13
}

/** A partition transaction: one input per active, one shared output, the anchor. */
export function partitionVbytes(actives: number): number {
  return 10.5 + 57.5 * actives + 43 + 13
}
