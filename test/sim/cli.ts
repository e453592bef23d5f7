// npm run sim -- --seeds N --nodes 5 [--seed S] [--first S] [--jobs J] [--steps K] [--plant BUG] [--trace]
//                [--core] [--byzantine N] [--lies KIND,...]
//
// By default the whole node is simulated (node-sim.ts: the real driver, store and wire codec);
// --core simulates the Raft core alone (sim.ts), much faster.
//
//   --seeds N    run N seeds (from --first, default 1)
//   --seed S     run only seed S (a replay) and print its trace
//   --nodes N    voters in the initial cluster (default 5)
//   --steps K    steps (events) of the fault phase of each run (default 3000)
//   --jobs J     worker threads (default 1)
//   --plant BUG  run with a planted bug (core bugs: test/sim/bugs.ts, with --core; driver and store
//                bugs: test/sim/node-bugs.ts): shows that the checks catch it
//   --byzantine N  N members lie (at most a minority); --lies picks the kinds (test/sim/byzantine.ts),
//                --properties the properties checked (alarms, safety, liveness; default all)
//   --stop       stop at the first failure
//   --trace      with --seed: print the trace even if the run passes

import { BUG_DESCRIPTIONS, isPlantedBug, PLANTED_BUGS, type PlantedBug } from './bugs.js'
import { BYZANTINE_KINDS, isByzantineKind, type ByzantineKind } from './byzantine.js'
import { isNodeBug, NODE_BUG_DESCRIPTIONS, NODE_BUGS, type NodeBug } from './node-bugs.js'
import { replayCommand, runBatch, runOne, type RunKind } from './runner.js'
import type { SimResult } from './sim.js'
import { BYZANTINE_PROPERTIES, type ByzantineProperty } from './node-sim.js'

interface Args {
  seeds: number
  first: number
  seed: number | null
  nodes: number
  steps: number
  jobs: number
  bug: PlantedBug | null
  nodeBug: NodeBug | null
  core: boolean
  byzantine: number
  lies: ByzantineKind[]
  properties: ByzantineProperty[] | undefined
  stop: boolean
  trace: boolean
}

function kindOf(a: Args): RunKind {
  return a.core
    ? { mode: 'core' }
    : {
        mode: 'node',
        nodeBug: a.nodeBug,
        byzantine: a.byzantine,
        lies: a.byzantine > 0 ? a.lies : undefined,
        properties: a.properties
      }
}

function usage(problem: string): never {
  console.error(`sim: ${problem}`)
  console.error(
    'usage: npm run sim -- --seeds N [--first S] [--nodes 5] [--steps 3000] [--jobs J] [--plant BUG] [--stop]'
  )
  console.error('       npm run sim -- --seed S [--nodes 5] [--steps 3000] [--plant BUG] [--trace]')
  console.error(`planted bugs: ${PLANTED_BUGS.join(', ')} (with --core); ${NODE_BUGS.join(', ')}`)
  console.error(`lies: ${BYZANTINE_KINDS.join(', ')}, huge-term`)
  process.exit(2)
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    seeds: 100,
    first: 1,
    seed: null,
    nodes: 5,
    steps: 3000,
    jobs: 1,
    bug: null,
    nodeBug: null,
    core: false,
    byzantine: 0,
    lies: [...BYZANTINE_KINDS],
    properties: undefined,
    stop: false,
    trace: false
  }
  let plant: string | null = null
  const int = (name: string, v: string | undefined, min: number): number => {
    const n = Number(v)
    if (v === undefined || !Number.isSafeInteger(n) || n < min) usage(`--${name} needs an integer >= ${min}`)
    return n
  }
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!
    switch (k) {
      case '--seeds':
        a.seeds = int('seeds', argv[++i], 1)
        break
      case '--first':
        a.first = int('first', argv[++i], 0)
        break
      case '--seed':
        a.seed = int('seed', argv[++i], 0)
        break
      case '--nodes':
        a.nodes = int('nodes', argv[++i], 1)
        break
      case '--steps':
        a.steps = int('steps', argv[++i], 1)
        break
      case '--jobs':
        a.jobs = int('jobs', argv[++i], 1)
        break
      case '--plant':
        plant = argv[++i] ?? null
        break
      case '--core':
        a.core = true
        break
      case '--byzantine':
        a.byzantine = int('byzantine', argv[++i], 0)
        break
      case '--properties': {
        const props = (argv[++i] ?? '').split(',').filter((k) => k !== '')
        for (const k of props)
          if (!(BYZANTINE_PROPERTIES as readonly string[]).includes(k))
            usage(`--properties: unknown property ${k} (${BYZANTINE_PROPERTIES.join(', ')})`)
        a.properties = props as ByzantineProperty[]
        break
      }
      case '--lies': {
        const kinds = (argv[++i] ?? '').split(',').filter((k) => k !== '')
        for (const k of kinds) if (!isByzantineKind(k)) usage(`--lies: unknown kind ${k}`)
        a.lies = kinds as ByzantineKind[]
        break
      }
      case '--stop':
        a.stop = true
        break
      case '--trace':
        a.trace = true
        break
      default:
        usage(`unknown argument ${k}`)
    }
  }
  if (plant !== null) {
    if (a.core && isPlantedBug(plant)) a.bug = plant
    else if (!a.core && isNodeBug(plant)) a.nodeBug = plant
    else
      usage(
        `--plant needs one of: ${a.core ? PLANTED_BUGS.join(', ') : NODE_BUGS.join(', ')}${a.core ? '' : ' (core bugs with --core)'}`
      )
  }
  if (a.core && a.byzantine > 0) usage('--byzantine needs the whole-node simulator (no --core)')
  return a
}

function printFailure(r: SimResult, a: Args): void {
  console.log(`\nFAIL seed ${r.seed}: ${r.failure}`)
  console.log(`  replay: ${replayCommand(r.seed, a.nodes, a.steps, a.bug, kindOf(a))}`)
  console.log(`  params: ${r.params}`)
  console.log(`  after ${r.steps} steps, ${r.ticks} ticks. Last ${r.trace.length} events:`)
  for (const line of r.trace) console.log(`    ${line}`)
}

function fmtRate(steps: number, ms: number): string {
  return `${Math.round(steps / Math.max(ms / 1000, 1e-3)).toLocaleString('en-US')} steps/s`
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2))
  if (a.bug !== null) console.log(`planted bug: ${a.bug}: ${BUG_DESCRIPTIONS[a.bug]}`)
  if (a.nodeBug !== null) console.log(`planted bug: ${a.nodeBug}: ${NODE_BUG_DESCRIPTIONS[a.nodeBug]}`)
  if (a.byzantine > 0) console.log(`byzantine members: ${a.byzantine}, lies: ${a.lies.join(',')}`)

  if (a.seed !== null) {
    const t0 = performance.now()
    const r = await runOne(a.seed, a.nodes, a.steps, a.bug, kindOf(a), a.trace)
    const ms = performance.now() - t0
    if (r.ok) {
      console.log(
        `seed ${r.seed}: ok, ${r.steps} steps, ${r.ticks} ticks, ${ms.toFixed(0)} ms (${fmtRate(r.steps, ms)})`
      )
      console.log(`  params: ${r.params}`)
      console.log(`  stats: ${JSON.stringify(r.stats)}`)
      if (a.trace) for (const line of r.trace) console.log(`    ${line}`)
    } else {
      printFailure(r, a)
      process.exitCode = 1
    }
    return
  }

  console.log(
    `simulating ${a.core ? 'the Raft core' : 'whole nodes'}, seeds ${a.first}..${a.first + a.seeds - 1}: ${a.nodes} nodes, ${a.steps} fault steps each, ${a.jobs} job(s)`
  )
  const summary = await runBatch({
    firstSeed: a.first,
    seeds: a.seeds,
    nodes: a.nodes,
    steps: a.steps,
    jobs: a.jobs,
    bug: a.bug,
    ...kindOf(a),
    stopOnFailure: a.stop,
    onProgress: (p) =>
      console.log(
        `  ${p.seedsRun}/${a.seeds} seeds, ${p.failures} failures, ${(p.elapsedMs / 1000).toFixed(0)} s, ${fmtRate(p.steps, p.elapsedMs)}`
      ),
    onFailure: (r) => console.log(`  FAIL seed ${r.seed}: ${r.failure}`)
  })
  const shown = summary.failed.slice(0, 3)
  for (const r of shown) printFailure(r, a)
  if (summary.failed.length > shown.length) {
    console.log(
      `\n(${summary.failed.length - shown.length} more failing seeds: ${summary.failed
        .slice(3, 40)
        .map((r) => r.seed)
        .join(', ')})`
    )
  }
  console.log(
    `\nseeds run: ${summary.seedsRun}, failures: ${summary.failures}, wall time: ${(summary.elapsedMs / 1000).toFixed(1)} s, ` +
      `simulated steps: ${summary.steps.toLocaleString('en-US')} (${fmtRate(summary.steps, summary.elapsedMs)})`
  )
  if (summary.failures > 0) process.exitCode = 1
}

await main()
