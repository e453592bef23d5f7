import assert from 'node:assert/strict'
import { Quarantine } from '../../daemon/replica/quarantine.js'

// Rule (issue 11): a member that keeps sending refused frames is throttled, then dropped for a while.
describe('board quarantine of a member whose frames keep being refused', () => {
  it('passes, throttles past 10 refusals, drops everything past 50 for 60 s, then forgives', () => {
    let nowMs = 0
    const q = new Quarantine(undefined, () => nowMs)
    assert.equal(q.admit('liar'), 'pass')
    const changes = []
    for (let i = 0; i < 10; i++) changes.push(q.refused('liar'))
    assert.deepEqual(
      changes.filter((c) => c !== null),
      ['throttled']
    )
    let passed = 0
    for (let i = 0; i < 100; i++) if (q.admit('liar') === 'pass') passed++
    assert.equal(passed, 20, 'at most 20 frames per window while throttled')
    assert.equal(q.admit('honest'), 'pass')
    for (let i = 0; i < 39; i++) q.refused('liar')
    assert.equal(q.refused('liar'), 'quarantined')
    assert.equal(q.admit('liar'), 'quarantined')
    assert.deepEqual(q.quarantined(), ['liar'])
    nowMs += 59_000
    assert.equal(q.admit('liar'), 'quarantined')
    nowMs += 2_000
    assert.equal(q.admit('liar'), 'pass')
    assert.deepEqual(q.quarantined(), [])
  })
})
