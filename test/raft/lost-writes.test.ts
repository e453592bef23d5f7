// A node whose store lost entries it had acknowledged (issue 11): it holds its votes until it has
// them again, and the leader resends below its match index when it says it lacks them.

import assert from 'node:assert/strict'
import { bootstrapState, type Message } from '../../board/raft/index.js'
import { Cluster, enc, msgsOfType, TestNode } from './harness.js'

describe('raft: a follower that lost acknowledged entries', () => {
  function setup(): { c: Cluster; promised: { index: number; hash: Uint8Array } } {
    const c = new Cluster({ voters: 3 })
    c.elect('n1')
    for (let i = 0; i < 5; i++) c.raft('n1').propose(enc(`v${i}`))
    c.stabilize()
    const n3 = c.raft('n3')
    const promised = { index: n3.lastIndex, hash: n3.hashAt(n3.lastIndex)! }
    // n3 restarts from a store that lost everything after the founding entry (its term survives,
    // as the promise record restores it).
    const state = bootstrapState({ voters: ['n1', 'n2', 'n3'], learners: [] })
    const node = new TestNode('n3', { ...state, hardState: { ...state.hardState, term: n3.currentTerm } }, {})
    node.raft.holdVotesUntil(promised.index, promised.hash)
    c.nodes.set('n3', node)
    return { c, promised }
  }

  it('it grants no vote and does not campaign while it lacks what it promised', () => {
    const { c } = setup()
    const n3 = c.raft('n3')
    assert.equal(n3.keptPromises(), false)
    n3.step({
      type: 'vote',
      from: 'n2',
      to: 'n3',
      term: n3.currentTerm + 1,
      lastIndex: 1,
      lastTerm: 1,
      force: true
    } as Message)
    const answers = msgsOfType(c.node('n3').handle(), 'voteResp')
    assert.equal(answers.length, 1)
    assert.equal(answers[0]!.reject, true, 'a candidate lacking the entries n3 acked must not get its vote')
    for (let i = 0; i < 100; i++) n3.tick()
    assert.equal(n3.currentRole, 'follower')
  })

  it('the leader resends below its match index, the follower catches up and votes again', () => {
    const { c, promised } = setup()
    c.tickAll(3) // heartbeats: n3 says it lacks entries below its match; n1 resends them
    const n3 = c.raft('n3')
    assert.equal(n3.lastIndex, c.raft('n1').lastIndex)
    assert.deepEqual(n3.hashAt(promised.index), promised.hash)
    assert.equal(n3.keptPromises(), true)
    assert.ok(c.node('n3').alarms.some((a) => a.kind === 'commit-beyond-log'))
    assert.deepEqual(c.node('n3').appliedData(), ['v0', 'v1', 'v2', 'v3', 'v4'])
  })
})
