import assert from 'node:assert/strict'
import { countsOption, numberOption, summarize, UsageError } from '../../bench/lib.js'

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
})
