/**
 * The plan of coalition-drop runs, pure: options parsed, each run's seed, and what a seed decides
 * (who plays A, B and C, who joins the coalition, who leads it, the order members answer in).
 * Nothing here touches a process or a clock, so a run's cast can be checked and replayed.
 */

export const DEFENSE_SETS = ['none', 'quorum-read', 'hash-chain', 'gossip-check', 'evidence', 'all'] as const
export type DefenseSet = (typeof DEFENSE_SETS)[number]

/** The config of every honest node in a run of `set`. */
export function defenseSettings(
  set: DefenseSet
): Record<'defense-quorum-read' | 'defense-hash-chain' | 'defense-gossip-check' | 'defense-evidence', '0' | '1'> {
  const on = (name: DefenseSet): '0' | '1' => (set === 'all' || set === name ? '1' : '0')
  return {
    'defense-quorum-read': on('quorum-read'),
    'defense-hash-chain': on('hash-chain'),
    'defense-gossip-check': on('gossip-check'),
    'defense-evidence': on('evidence')
  }
}

export const MIN_MEMBERS = 4
export const MAX_MEMBERS = 16
export const MAX_RUNS = 2_000
/** Spacing of the lab answer delays: member i in the answer order answers after i × this. */
export const ANSWER_STEP_MS = 60

export type AnswerOrder = 'adversarial' | 'random'

export interface LabPlanOptions {
  members: number
  coalitionSizes: number[]
  defenses: DefenseSet[]
  runs: number
  seed: number
  order: AnswerOrder
  /** Every honest member that holds S1 is offline when C comes back (the case no defense covers). */
  holdersOffline: boolean
}

export interface RunPlan {
  /** 0-based position in the whole invocation. */
  run: number
  seed: number
  coalitionSize: number
  defense: DefenseSet
  /** Member names (node1..nodeN). */
  a: string
  b: string
  c: string
  /** A first; empty for a coalition of size 0. */
  coalition: string[]
  /** The coalition member made to lead before C comes back (null without a coalition). */
  leader: string | null
  /** Who answers the defenses' questions first, second, ... */
  answerOrder: string[]
  answerDelayMs: Record<string, number>
  holdersOffline: boolean
  /** The command that plays this run again. */
  replay: string
}

/** The name of run `run`'s (0-based) cluster directory, and the prefix of its record file: `run-0001` for run 0. */
export function runDirName(run: number): string {
  return `run-${String(run + 1).padStart(4, '0')}`
}

/** Parses "1..5", "1,3,5", "0,2..4": sorted, distinct, each within [min, max]. */
export function parseRangeList(text: string, min: number, max: number, what: string): number[] {
  const out = new Set<number>()
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '')) {
    const m = /^(\d+)(?:\.\.(\d+))?$/.exec(part)
    if (m === null) throw new Error(`${what}: expected numbers or ranges like 1..5 or 1,3,5, got "${part}"`)
    const lo = Number(m[1])
    const hi = m[2] === undefined ? lo : Number(m[2])
    if (hi < lo) throw new Error(`${what}: range ${part} goes down`)
    if (lo < min || hi > max) throw new Error(`${what}: ${part} is outside ${min}..${max}`)
    for (let v = lo; v <= hi; v++) out.add(v)
  }
  if (out.size === 0) throw new Error(`${what}: expected at least one value`)
  return [...out].sort((a, b) => a - b)
}

/** Parses "none,quorum-read,all" (or "every" for all six sets). */
export function parseDefenseList(text: string): DefenseSet[] {
  if (text.trim() === 'every') return [...DEFENSE_SETS]
  const out: DefenseSet[] = []
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '')) {
    const d = DEFENSE_SETS.find((x) => x === part)
    if (d === undefined) throw new Error(`--defenses: unknown "${part}" (known: ${DEFENSE_SETS.join(', ')})`)
    if (!out.includes(d)) out.push(d)
  }
  if (out.length === 0) throw new Error('--defenses: expected at least one')
  return out
}

/** Checks the options against one another; returns the problem or null. */
export function checkPlanOptions(o: LabPlanOptions): string | null {
  if (!Number.isSafeInteger(o.members) || o.members < MIN_MEMBERS || o.members > MAX_MEMBERS)
    return `--members: expected ${MIN_MEMBERS} to ${MAX_MEMBERS}, got ${o.members}`
  const maxCoalition = o.members - 2
  const over = o.coalitionSizes.filter((k) => k > maxCoalition)
  if (over.length > 0)
    return `--coalition: ${over.join(', ')} is more than ${maxCoalition}: B and C are never in the coalition`
  if (!Number.isSafeInteger(o.runs) || o.runs < 1) return `--runs: expected a positive number, got ${o.runs}`
  const total = o.runs * o.coalitionSizes.length * o.defenses.length
  if (total > MAX_RUNS)
    return `${total} runs in all (${o.runs} × ${o.coalitionSizes.length} coalition sizes × ${o.defenses.length} defenses): at most ${MAX_RUNS}`
  if (!Number.isSafeInteger(o.seed) || o.seed < 0 || o.seed > 0xffffffff)
    return `--seed: expected 0 to ${0xffffffff}, got ${o.seed}`
  return null
}

/**
 * Every run of the invocation, in the order they are played: round r of every (coalition size,
 * defense) before round r + 1, so that a run cut short still covers every combination. Run 0
 * gets `seed` itself and run j the mix of `seed` and j: replaying one run with `--runs 1
 * --seed S` and its own size and defense plays exactly it.
 */
export function planRuns(o: LabPlanOptions): RunPlan[] {
  const plans: RunPlan[] = []
  for (let r = 0; r < o.runs; r++) {
    for (const k of o.coalitionSizes) {
      for (const d of o.defenses) {
        const run = plans.length
        plans.push(planRun(run, run === 0 ? o.seed : mixSeed(o.seed, run), k, d, o))
      }
    }
  }
  return plans
}

export function planRun(
  run: number,
  seed: number,
  k: number,
  defense: DefenseSet,
  o: Pick<LabPlanOptions, 'members' | 'order' | 'holdersOffline'>
): RunPlan {
  const rng = new Prng(seed)
  const names = Array.from({ length: o.members }, (_, i) => `node${i + 1}`)
  const cast = rng.shuffle(names)
  const [a, b, c] = cast
  const others = cast.slice(3)
  const coalition = k === 0 ? [] : [a, ...others.slice(0, k - 1)]
  const leader = k === 0 ? null : coalition[rng.int(coalition.length)]
  const honest = names.filter((n) => !coalition.includes(n))
  const answerOrder =
    o.order === 'adversarial' ? [...rng.shuffle(coalition), ...rng.shuffle(honest)] : rng.shuffle(names)
  const answerDelayMs = Object.fromEntries(answerOrder.map((n, i) => [n, i * ANSWER_STEP_MS]))
  const replay = `poolboard lab coalition-drop --members ${o.members} --coalition ${k} --defenses ${defense} --runs 1 --seed ${seed} --order ${o.order}${o.holdersOffline ? ' --holders-offline' : ''}`
  return {
    run,
    seed,
    coalitionSize: k,
    defense,
    a,
    b,
    c,
    coalition,
    leader,
    answerOrder,
    answerDelayMs,
    holdersOffline: o.holdersOffline,
    replay
  }
}

/** splitmix32 of (seed, run): well spread run seeds in [0, 2^32). */
export function mixSeed(seed: number, run: number): number {
  let z = (seed + Math.imul(run, 0x9e3779b9)) >>> 0
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
  return (z ^ (z >>> 16)) >>> 0
}

/** A small seeded generator (mulberry32): the same seed gives the same cast on every machine. */
export class Prng {
  private state: number

  constructor(seed: number) {
    this.state = seed >>> 0
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0
    let t = this.state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n)
  }

  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items]
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1)
      ;[out[i], out[j]] = [out[j], out[i]]
    }
    return out
  }
}
