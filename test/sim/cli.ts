// npm run sim -- --seeds N --nodes 5 [--seed S] [--first S] [--jobs J] [--steps K] [--plant BUG] [--trace]
//
//   --seeds N    run N seeds (from --first, default 1)
//   --seed S     run only seed S (a replay) and print its trace
//   --nodes N    voters in the initial cluster (default 5)
//   --steps K    steps (events) of the fault phase of each run (default 3000)
//   --jobs J     worker threads (default 1)
//   --plant BUG  run with a planted bug (see test/sim/bugs.ts): shows that the checks catch it
//   --stop       stop at the first failure
//   --trace      with --seed: print the trace even if the run passes

import { BUG_DESCRIPTIONS, isPlantedBug, PLANTED_BUGS, type PlantedBug } from './bugs.js';
import { replayCommand, runBatch } from './runner.js';
import { runSimulation, type SimResult } from './sim.js';

interface Args {
  seeds: number;
  first: number;
  seed: number | null;
  nodes: number;
  steps: number;
  jobs: number;
  bug: PlantedBug | null;
  stop: boolean;
  trace: boolean;
}

function usage(problem: string): never {
  console.error(`sim: ${problem}`);
  console.error('usage: npm run sim -- --seeds N [--first S] [--nodes 5] [--steps 3000] [--jobs J] [--plant BUG] [--stop]');
  console.error('       npm run sim -- --seed S [--nodes 5] [--steps 3000] [--plant BUG] [--trace]');
  console.error(`planted bugs: ${PLANTED_BUGS.join(', ')}`);
  process.exit(2);
}

function parseArgs(argv: string[]): Args {
  const a: Args = { seeds: 100, first: 1, seed: null, nodes: 5, steps: 3000, jobs: 1, bug: null, stop: false, trace: false };
  const int = (name: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isSafeInteger(n) || n < min) usage(`--${name} needs an integer >= ${min}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    switch (k) {
      case '--seeds':
        a.seeds = int('seeds', argv[++i], 1);
        break;
      case '--first':
        a.first = int('first', argv[++i], 0);
        break;
      case '--seed':
        a.seed = int('seed', argv[++i], 0);
        break;
      case '--nodes':
        a.nodes = int('nodes', argv[++i], 1);
        break;
      case '--steps':
        a.steps = int('steps', argv[++i], 1);
        break;
      case '--jobs':
        a.jobs = int('jobs', argv[++i], 1);
        break;
      case '--plant': {
        const b = argv[++i];
        if (b === undefined || !isPlantedBug(b)) usage(`--plant needs one of: ${PLANTED_BUGS.join(', ')}`);
        a.bug = b;
        break;
      }
      case '--stop':
        a.stop = true;
        break;
      case '--trace':
        a.trace = true;
        break;
      default:
        usage(`unknown argument ${k}`);
    }
  }
  return a;
}

function printFailure(r: SimResult, a: Args): void {
  console.log(`\nFAIL seed ${r.seed}: ${r.failure}`);
  console.log(`  replay: ${replayCommand(r.seed, a.nodes, a.steps, a.bug)}`);
  console.log(`  params: ${r.params}`);
  console.log(`  after ${r.steps} steps, ${r.ticks} ticks. Last ${r.trace.length} events:`);
  for (const line of r.trace) console.log(`    ${line}`);
}

function fmtRate(steps: number, ms: number): string {
  return `${Math.round(steps / Math.max(ms / 1000, 1e-3)).toLocaleString('en-US')} steps/s`;
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  if (a.bug !== null) console.log(`planted bug: ${a.bug}: ${BUG_DESCRIPTIONS[a.bug]}`);

  if (a.seed !== null) {
    const t0 = performance.now();
    const r = runSimulation({ seed: a.seed, nodes: a.nodes, steps: a.steps, bug: a.bug, alwaysTrace: a.trace });
    const ms = performance.now() - t0;
    if (r.ok) {
      console.log(`seed ${r.seed}: ok, ${r.steps} steps, ${r.ticks} ticks, ${ms.toFixed(0)} ms (${fmtRate(r.steps, ms)})`);
      console.log(`  params: ${r.params}`);
      console.log(`  stats: ${JSON.stringify(r.stats)}`);
      if (a.trace) for (const line of r.trace) console.log(`    ${line}`);
    } else {
      printFailure(r, a);
      process.exitCode = 1;
    }
    return;
  }

  console.log(
    `simulating seeds ${a.first}..${a.first + a.seeds - 1}: ${a.nodes} nodes, ${a.steps} fault steps each, ${a.jobs} job(s)`,
  );
  const summary = await runBatch({
    firstSeed: a.first,
    seeds: a.seeds,
    nodes: a.nodes,
    steps: a.steps,
    jobs: a.jobs,
    bug: a.bug,
    stopOnFailure: a.stop,
    onProgress: (p) =>
      console.log(
        `  ${p.seedsRun}/${a.seeds} seeds, ${p.failures} failures, ${(p.elapsedMs / 1000).toFixed(0)} s, ${fmtRate(p.steps, p.elapsedMs)}`,
      ),
    onFailure: (r) => console.log(`  FAIL seed ${r.seed}: ${r.failure}`),
  });
  const shown = summary.failed.slice(0, 3);
  for (const r of shown) printFailure(r, a);
  if (summary.failed.length > shown.length) {
    console.log(`\n(${summary.failed.length - shown.length} more failing seeds: ${summary.failed.slice(3, 40).map((r) => r.seed).join(', ')})`);
  }
  console.log(
    `\nseeds run: ${summary.seedsRun}, failures: ${summary.failures}, wall time: ${(summary.elapsedMs / 1000).toFixed(1)} s, ` +
      `simulated steps: ${summary.steps.toLocaleString('en-US')} (${fmtRate(summary.steps, summary.elapsedMs)})`,
  );
  if (summary.failures > 0) process.exitCode = 1;
}

await main();
