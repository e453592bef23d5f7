import assert from 'node:assert/strict'
import { countsOption, meets, numberOption, summarize, UsageError, withBudget } from '../../bench/lib.js'

describe('bench: options and summaries', () => {
  it('numberOption takes numbers in range and names the option it refuses', () => {
    assert.equal(numberOption('duration-s', '2.5', { min: 0.1 }), 2.5)
    assert.equal(numberOption('failovers', '0', { integer: true }), 0)
    for (const [text, opts] of [
      ['', {}],
      ['abc', {}],
      ['-1', {}],
      ['Infinity', {}],
      ['1.5', { integer: true }],
      ['0', { min: 1 }]
    ] as const) {
      assert.throws(
        () => numberOption('runs', text, opts),
        (err: unknown) =>
          err instanceof UsageError && err.message.startsWith('--runs:') && err.message.includes(`"${text}"`)
      )
    }
  })

  it('countsOption takes positive whole numbers separated by commas', () => {
    assert.deepEqual(countsOption('clients', '1,16,64'), [1, 16, 64])
    for (const text of ['', '1,,2', '0', '3,x', '2.5']) {
      assert.throws(
        () => countsOption('clients', text),
        (err: unknown) => err instanceof UsageError && err.message.startsWith('--clients:')
      )
    }
  })

  it('summarize reads percentiles by nearest rank, and takes more samples than a spread call could', () => {
    const samples = Array.from({ length: 200_000 }, (_, i) => 200_000 - i) // 1..200000, descending
    const s = summarize(samples)
    assert.deepEqual([s.count, s.min, s.p50, s.p90, s.p99, s.max], [200_000, 1, 100_000, 180_000, 198_000, 200_000])
    assert.equal(s.mean, 100_000.5)
    assert.equal(summarize([]).count, 0)
  })

  it('a budget prints its goal beside the figure and says whether it is met, at the limit included (benchmarks show their goals)', () => {
    assert.equal(meets(30, { atMost: 30 }), true)
    assert.equal(meets(30.1, { atMost: 30 }), false)
    assert.equal(meets(1.5, { atLeast: 1.5 }), true)
    assert.equal(meets(1.49, { atLeast: 1.5 }), false)
    assert.equal(withBudget(215, { atMost: 30 }), '215.0 (goal ≤ 30.0: MISSED)')
    assert.equal(withBudget(1.62, { atLeast: 1.5 }, 2), '1.62 (goal ≥ 1.50: met)')
  })
})
