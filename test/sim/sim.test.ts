// The simulator runs clean over many seeds, replays a seed exactly, and reports failures with a
// replay command and a trace.

import assert from 'node:assert/strict'
import { replayCommand, runBatch, type BatchSummary } from './runner.js'
import { runSimulation } from './sim.js'

function explain(s: BatchSummary): string {
  return s.failed
    .slice(0, 3)
    .map((r) => `seed ${r.seed}: ${r.failure}\n  ${r.params}\n  ${r.trace.join('\n  ')}`)
    .join('\n\n')
}

describe('simulator', function () {
  this.timeout(600_000)

  it('replays a seed exactly (same steps, stats and trace)', () => {
    const a = runSimulation({ seed: 4242, nodes: 5, steps: 2000, alwaysTrace: true })
    const b = runSimulation({ seed: 4242, nodes: 5, steps: 2000, alwaysTrace: true })
    assert.equal(a.steps, b.steps)
    assert.deepEqual(a.stats, b.stats)
    assert.deepEqual(a.trace, b.trace)
    assert.equal(a.trace.length, 50)
    const c = runSimulation({ seed: 4243, nodes: 5, steps: 2000 })
    assert.notDeepEqual(a.stats, c.stats, 'another seed is another run')
  })

  it('names the one-line command that replays a failing seed', () => {
    assert.equal(replayCommand(17, 5, 3000, null), 'npm run sim -- --core --seed 17 --nodes 5 --steps 3000')
    assert.equal(
      replayCommand(17, 3, 100, 'commit-earlier-term'),
      'npm run sim -- --core --seed 17 --nodes 3 --steps 100 --plant commit-earlier-term'
    )
    assert.equal(
      replayCommand(17, 5, 3000, null, { mode: 'node', nodeBug: 'history-gap', byzantine: 1, lies: ['forge'] }),
      'npm run sim -- --seed 17 --nodes 5 --steps 3000 --plant history-gap --byzantine 1 --lies forge'
    )
  })

  it('reports a violation with the trace of the last events', () => {
    const r = runSimulation({ seed: 1, nodes: 5, steps: 3000, bug: 'vote-without-log-check' })
    assert.equal(r.ok, false)
    assert.match(r.failure!, /leader completeness|state machine safety|durable|log matching|election safety/)
    assert.equal(r.trace.length, 50)
    assert.match(r.trace.join('\n'), /t= +\d+\.\d n\d/)
  })

  it('runs 4,000 seeds of 5-node clusters with every fault on, clean', async () => {
    const s = await runBatch({ firstSeed: 1, seeds: 4000, nodes: 5, steps: 3000, jobs: 2 })
    assert.equal(s.failures, 0, explain(s))
    assert.equal(s.seedsRun, 4000)
  })

  it('runs 300 seeds of 3-node clusters and 300 of 7-node clusters, clean', async () => {
    for (const nodes of [3, 7]) {
      const s = await runBatch({ firstSeed: 1_000_000, seeds: 300, nodes, steps: 3000, jobs: 2 })
      assert.equal(s.failures, 0, explain(s))
    }
  })

  it('a single-node cluster runs clean', async () => {
    const s = await runBatch({ firstSeed: 2_000_000, seeds: 50, nodes: 1, steps: 1000, jobs: 1 })
    assert.equal(s.failures, 0, explain(s))
  })
})
