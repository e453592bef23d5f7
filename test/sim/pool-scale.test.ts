import assert from 'node:assert/strict'
import { runScaleSimulation, type ScaleReport } from './pool-scale.js'

/**
 * The pool simulator (test/sim/pool-scale.ts) on a 1,000-member pool: updates signed by everyone, a
 * partition among 600 actives, a partition of 300 of them, an update inside and a kick-out, with
 * the board's invariants (consistency, value conserved, no outpoint spent twice, sampled members
 * agree) checked after every entry. Rules (docs/protocol.md §10): gossip reaches every member in a
 * bounded number of hops, and each round costs a member at most linearly in its signers.
 */
describe('a 1,000-member pool, simulated', function () {
  this.timeout(600_000)
  let report: ScaleReport

  before(() => {
    report = runScaleSimulation({ members: 1_000, seed: 13, updates: 1, sampled: 2 })
  })

  it('every round is accepted on every sampled board, with invariants checked after each entry', () => {
    assert.deepEqual(
      report.rounds.map((r) => r.round),
      ['genesis', 'update 1', 'partition of 600', 'partition of 300 in it', 'update in it', 'kick-out']
    )
    for (const r of report.rounds) assert.equal(r.outcome, 'accepted', r.round)
    assert.ok(report.invariantChecks >= 2 * report.rounds.length)
    assert.equal(report.totalSats, String(1_000n * 100_000n))
  })

  it('gossip reaches every member within a bounded number of hops', () => {
    for (const r of report.rounds.filter((x) => x.signers > 0))
      assert.ok(r.maxHops <= 8, `${r.round}: ${r.maxHops} hops`)
  })

  it('a member receives a bounded number of copies per signer: the cost is linear in the signers', () => {
    const perSigner = report.rounds.filter((r) => r.signers > 0).map((r) => r.messagesPerMember / r.signers)
    // Each signer's share reaches a member over about meshDegree links, and no more.
    for (const x of perSigner) assert.ok(x <= report.meshDegree + 1, `${x} copies per signer`)
    assert.ok(Math.max(...perSigner) / Math.min(...perSigner) < 1.2, `per-signer cost varies: ${perSigner.join(', ')}`)
  })

  it('the same seed replays the same run (messages and bytes)', () => {
    const a = runScaleSimulation({ members: 60, seed: 5, updates: 1, sampled: 2 })
    const b = runScaleSimulation({ members: 60, seed: 5, updates: 1, sampled: 2 })
    const counts = (r: ScaleReport): unknown =>
      r.rounds.map((x) => [x.round, x.signers, x.messagesPerMember, x.bytesPerMember, x.gossipCopies, x.maxHops])
    assert.deepEqual(counts(a), counts(b))
  })
})
