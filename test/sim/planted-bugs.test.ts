// The simulator must be able to fail: each known Raft bug, planted by subclassing the core (or in
// the simulated driver and disk), is found within a fixed budget of seeds. Seeds are fixed, so
// this is deterministic.

import assert from 'node:assert/strict'
import { BUG_DESCRIPTIONS, PLANTED_BUGS } from './bugs.js'
import { replayCommand } from './runner.js'
import { runSimulation } from './sim.js'

const BUDGET_SEEDS = 1000

describe('simulator finds planted bugs', function () {
  this.timeout(600_000)
  for (const bug of PLANTED_BUGS) {
    it(`finds "${bug}" (${BUG_DESCRIPTIONS[bug]}) within ${BUDGET_SEEDS} seeds`, () => {
      for (let seed = 1; seed <= BUDGET_SEEDS; seed++) {
        const r = runSimulation({ seed, nodes: 5, steps: 3000, bug })
        if (!r.ok) {
          console.log(`      found at seed ${seed}: ${r.failure!.split('\n')[0]!.slice(0, 160)}`)
          console.log(`      replay: ${replayCommand(seed, 5, 3000, bug)}`)
          return
        }
      }
      assert.fail(`${bug} not found in ${BUDGET_SEEDS} seeds`)
    })
  }
  // The same seeds without a bug pass: sim.test.ts runs seeds 1..4000 of 5-node clusters clean.
})
