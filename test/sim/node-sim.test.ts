// The whole-node simulator (node-sim.ts: the real driver, store and wire codec) replays a seed
// exactly, runs clean over thousands of seeds with every fault on, keeps the properties that hold
// with Byzantine members today, and finds the planted driver and store bugs.

import assert from 'node:assert/strict'
import { ALL_BYZANTINE_KINDS } from './byzantine.js'
import { NODE_BUG_DESCRIPTIONS, NODE_BUGS, type NodeBug } from './node-bugs.js'
import { runNodeSimulation } from './node-sim.js'
import { replayCommand, runBatch, type BatchSummary } from './runner.js'

function explain(s: BatchSummary): string {
  return s.failed
    .slice(0, 3)
    .map((r) => `seed ${r.seed}: ${r.failure}\n  ${r.params}\n  ${r.trace.join('\n  ')}`)
    .join('\n\n')
}

/** Seeds searched for each planted bug; the first failing seed is printed (fixed seeds: deterministic). */
const BUDGET_SEEDS = 800
/**
 * Found by its regression test (test/daemon/board.test.ts) only: its trigger needs a lone voter,
 * which a run of about a second of simulated time seldom reaches (seed 293 before the snapshot
 * replay changed the runs; none in 1..700 since). Changing membership four times as often in the
 * seeds that may shrink to one voter finds it at seed 104, and also a liveness wedge of the core
 * (docs/raft.md, simulator) that must be fixed first.
 */
const NOT_FOUND_BY_SIMULATION: ReadonlySet<NodeBug> = new Set(['no-catch-up-check'])

describe('whole-node simulator', function () {
  this.timeout(900_000)

  it('replays a seed exactly (same steps, stats and trace)', async () => {
    const a = await runNodeSimulation({ seed: 4242, nodes: 5, steps: 2000, alwaysTrace: true })
    const b = await runNodeSimulation({ seed: 4242, nodes: 5, steps: 2000, alwaysTrace: true })
    const c = await runNodeSimulation({ seed: 4242, nodes: 5, steps: 2000 })
    assert.equal(a.steps, b.steps)
    assert.deepEqual(a.stats, b.stats)
    assert.deepEqual(a.trace, b.trace)
    assert.equal(c.steps, a.steps, 'the trace does not change the run')
    const d = await runNodeSimulation({ seed: 4243, nodes: 5, steps: 2000 })
    assert.notDeepEqual(a.stats, d.stats, 'another seed is another run')
  })

  // Rule (docs/raft.md, simulator): no honest node stops itself or raises an alarm, and every
  // safety check holds after every step, whatever the disk, network and clocks do.
  it('runs 2,000 seeds of 5-node clusters with every fault on, clean', async () => {
    const s = await runBatch({ firstSeed: 1, seeds: 2000, nodes: 5, steps: 3000, jobs: 2, mode: 'node' })
    assert.equal(s.failures, 0, explain(s))
    assert.equal(s.seedsRun, 2000)
  })

  it('runs 200 seeds of 3-node clusters and 50 of a single node, clean', async () => {
    const three = await runBatch({ firstSeed: 1_000_000, seeds: 200, nodes: 3, steps: 3000, jobs: 2, mode: 'node' })
    assert.equal(three.failures, 0, explain(three))
    const one = await runBatch({ firstSeed: 2_000_000, seeds: 50, nodes: 1, steps: 1000, jobs: 1, mode: 'node' })
    assert.equal(one.failures, 0, explain(one))
  })

  // Rule (docs/raft.md, "A member that lies"): with f liars (faultyVoters f), the honest members
  // still elect a leader and commit among 3f + 1 voters or more; no honest node applies an entry a
  // majority of the honest voters does not store, and all apply the same entries; an honest node's
  // alarms name a liar only. Every lie is on: garbage, random, replayed, forged, contradicting
  // messages, huge terms.
  const ALL_LIES = [...ALL_BYZANTINE_KINDS]
  it('with one liar of 5 members telling every lie, every property holds', async () => {
    const s = await runBatch({
      firstSeed: 1,
      seeds: 300,
      nodes: 5,
      steps: 3000,
      jobs: 2,
      mode: 'node',
      byzantine: 1,
      lies: ALL_LIES
    })
    assert.equal(s.failures, 0, explain(s))
  })

  it('with a coalition of two among 7 every property holds; among 5, safety and alarms (liveness needs 3f + 1 voters)', async () => {
    const seven = await runBatch({
      firstSeed: 100_000,
      seeds: 60,
      nodes: 7,
      steps: 3000,
      jobs: 2,
      mode: 'node',
      byzantine: 2,
      lies: ALL_LIES
    })
    assert.equal(seven.failures, 0, explain(seven))
    const five = await runBatch({
      firstSeed: 200_000,
      seeds: 40,
      nodes: 5,
      steps: 3000,
      jobs: 2,
      mode: 'node',
      byzantine: 2,
      lies: ALL_LIES,
      properties: ['alarms', 'safety']
    })
    assert.equal(five.failures, 0, explain(five))
  })

  for (const bug of NODE_BUGS) {
    if (NOT_FOUND_BY_SIMULATION.has(bug)) continue
    it(`finds "${bug}" (${NODE_BUG_DESCRIPTIONS[bug]}) within ${BUDGET_SEEDS} seeds`, async () => {
      for (let seed = 1; seed <= BUDGET_SEEDS; seed++) {
        const r = await runNodeSimulation({ seed, nodes: 5, steps: 3000, bug })
        if (!r.ok) {
          console.log(`      found at seed ${seed}: ${r.failure!.split('\n')[0]!.slice(0, 160)}`)
          console.log(`      replay: ${replayCommand(seed, 5, 3000, null, { mode: 'node', nodeBug: bug })}`)
          return
        }
      }
      assert.fail(`${bug} not found in ${BUDGET_SEEDS} seeds`)
    })
  }
})
