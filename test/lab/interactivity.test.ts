/**
 * The interactivity study (docs/interactivity.md): the model replays exactly from its seed, every
 * policy sees the same schedule, its operations are accepted by the real board with real
 * signatures, and the quick grid writes its tables and charts.
 */
import assert from 'node:assert/strict'
import { checkOnBoard } from '../../daemon/lab/interactivity/board-check.js'
import {
  DEFAULT_MODEL,
  makeSchedule,
  POLICIES,
  runModel,
  stateVbytes,
  type ModelParams
} from '../../daemon/lab/interactivity/model.js'
import { cellsCsv, headlineTable, renderHtml } from '../../daemon/lab/interactivity/report.js'
import { estimate, QUICK_GRID, quantile, runStudy } from '../../daemon/lab/interactivity/study.js'

const DAY = 1440

function params(over: Partial<ModelParams> = {}): ModelParams {
  return { ...DEFAULT_MODEL, members: 16, uptime: 0.7, policy: 'partitions', seed: 7, horizonMin: 2 * DAY, ...over }
}

describe('the interactivity study', function () {
  this.timeout(120_000)

  it('replays exactly from its seed, and every policy runs on the same schedule (rule: seeded, no ambient randomness)', () => {
    const a = runModel(params())
    const b = runModel(params())
    assert.deepStrictEqual(a, b)
    assert.notDeepStrictEqual(runModel(params({ seed: 8 })).payments, a.payments)
    const schedule = makeSchedule(params())
    const early = schedule.events.flatMap((e) => (e.kind === 'pay' && e.t < DAY ? [e.id] : []))
    assert.ok(early.length > 20)
    for (const policy of POLICIES) {
      // every payment started at least a patience before the end is settled, under every policy
      const settled = runModel(params({ policy }), schedule)
        .payments.filter((x) => x.t < DAY)
        .map((x) => x.id)
      assert.deepStrictEqual(settled, early, policy)
    }
  })

  it('with everyone always online every payment completes at once under every policy', () => {
    for (const policy of POLICIES) {
      const r = runModel(params({ uptime: 1, policy }))
      assert.ok(r.payments.length > 0)
      assert.ok(
        r.payments.every((x) => x.delayMin === 0),
        policy
      )
      assert.equal(r.ops.filter((o) => o.kind !== 'update').length, 0, 'nothing to partition, merge or kick out')
    }
  })

  it('partitions complete more payments than unanimity when members are offline, and merges bring the pool back together', () => {
    const schedule = makeSchedule(params({ uptime: 0.7 }))
    const una = runModel(params({ uptime: 0.7, policy: 'unanimity' }), schedule)
    const par = runModel(params({ uptime: 0.7, policy: 'partitions' }), schedule)
    const done = (r: typeof una): number => r.payments.filter((x) => x.delayMin !== null).length
    assert.ok(done(par) > done(una), `partitions ${done(par)}, unanimity ${done(una)}`)
    assert.ok(par.ops.some((o) => o.kind === 'merge'))
    // value is conserved: what the members hold plus what left on chain
    for (const r of [una, par, runModel(params({ uptime: 0.5, policy: 'partitions-kickout' }))]) {
      const total = r.finalBalances.reduce((x, y) => x + y, 0) + r.onChainSats.reduce((x, y) => x + y, 0)
      assert.equal(total, 16 * DEFAULT_MODEL.balanceSats)
    }
  })

  it('every operation of the model is accepted by the real board, with real signatures, and the balances agree (n 4, every policy; n 16, partitions)', () => {
    for (const policy of POLICIES)
      checkOnBoard(runModel(params({ members: 4, uptime: 0.6, policy, horizonMin: 2 * DAY })))
    const c = checkOnBoard(
      runModel(params({ members: 16, uptime: 0.6, policy: 'partitions-kickout', horizonMin: 1.5 * DAY }))
    )
    assert.ok(c.entries > 10)
  })

  it("estimates: means with Student's t intervals; nearest-rank quantiles", () => {
    assert.deepStrictEqual(estimate([1, 1, 1]), { mean: 1, ci95: 0, n: 3 })
    const e = estimate([0, 1])!
    assert.equal(e.mean, 0.5)
    assert.ok(Math.abs(e.ci95 - (12.706 * Math.SQRT1_2) / Math.SQRT2) < 1e-9)
    assert.equal(estimate([null, null]), null)
    assert.equal(quantile([1, 2, 3, 4], 0.5), 2)
    assert.equal(quantile([1, 2, 3, 4], 0.99), 4)
    assert.equal(quantile([], 0.5), null)
    assert.equal(stateVbytes(230) <= 10_000, true)
    assert.equal(
      stateVbytes(231) > 10_000,
      true,
      "state(N) passes TRUC's limit at about 230 members (docs/protocol.md)"
    )
  })

  it('the quick grid runs and writes the headline table, CSV and a page with its charts and command', () => {
    const r = runStudy(QUICK_GRID)
    assert.equal(r.runs.length, 2 * 2 * 4 * 3)
    assert.equal(r.cells.length, 16)
    const table = headlineTable(r)
    assert.match(
      table,
      /^\| n \| p \| unanimity only \| unanimity \+ kick-out \| partitions \+ merge \| partitions \+ merge \+ kick-out \|/
    )
    assert.equal(table.trim().split('\n').length, 2 + 4)
    assert.equal(cellsCsv(r).trim().split('\n').length, 1 + 16)
    const html = renderHtml(r, {
      command: 'poolboard lab interactivity --quick',
      version: '0.1.0',
      createdAt: '2026-01-01T00:00:00Z'
    })
    assert.match(html, /<code>poolboard lab interactivity --quick<\/code>/)
    assert.equal((html.match(/<svg /g) ?? []).length, 7)
    assert.match(html, /mean uptime p/)
  })
})
