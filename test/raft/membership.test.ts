// Membership changes (§6, single-server changes of the thesis §4.1), and their encoding.

import assert from 'node:assert/strict'
import {
  bootstrapState,
  ConfChangeError,
  decodeConfEntry,
  encodeConfEntry,
  joiningState,
  ProposalError,
  type ConfChange
} from '../../board/raft/index.js'
import { Cluster, enc, refusal, staggered } from './harness.js'

describe('raft §6 membership changes', () => {
  it('§6: a new node joins as a learner, catches up from the log, and is promoted to voter', () => {
    const c = new Cluster({ voters: 3 })
    const l = c.elect('n1')
    l.propose(enc('before'))
    c.stabilize()
    c.add('n4', joiningState())
    l.proposeConfChange({ kind: 'addLearner', node: 'n4' })
    c.stabilize()
    c.tickAll(2)
    assert.deepEqual(c.node('n4').appliedData(), ['before'])
    assert.deepEqual(c.raft('n4').configuration(), { voters: ['n1', 'n2', 'n3'], learners: ['n4'] })
    l.proposeConfChange({ kind: 'promoteLearner', node: 'n4' })
    c.stabilize()
    for (const n of c.nodes.values()) assert.deepEqual(n.raft.configuration().voters, ['n1', 'n2', 'n3', 'n4'], n.id)
    // With four voters a quorum is three: two voters down block commits.
    c.isolate('n2')
    c.isolate('n3')
    const r = l.propose(enc('needs three'))
    c.stabilize()
    assert.ok(l.commitIndex < r.index)
  })

  it('§6: a configuration takes effect when appended, before it commits', () => {
    const c = new Cluster({ voters: 3 })
    const l = c.elect('n1')
    c.isolate('n2')
    c.isolate('n3')
    l.proposeConfChange({ kind: 'removeNode', node: 'n3' })
    assert.deepEqual(l.configuration().voters, ['n1', 'n2'], 'the leader uses it at once')
    assert.equal(l.status().progress!.n3, undefined)
  })

  it('§6: a configuration is reverted when its entry is truncated', () => {
    const c = new Cluster({ voters: 3, rand: staggered })
    const l = c.elect('n1')
    c.isolate('n1')
    l.proposeConfChange({ kind: 'addLearner', node: 'n9' })
    // n2 receives the change by hand, then n3 is elected without it.
    c.node('n1').handle()
    assert.deepEqual(l.configuration().learners, ['n9'])
    for (let i = 0; i < 200 && (c.leader() === l || c.leader() === null); i++) c.tickAll()
    const l2 = c.leader()!
    l2.propose(enc('x'))
    c.stabilize()
    c.heal()
    c.tickAll(5)
    assert.deepEqual(l.configuration().learners, [], 'the uncommitted change was truncated with its entry')
  })

  it('§6: one change at a time: a second change is refused while the first is uncommitted', () => {
    const c = new Cluster({ voters: 3 })
    const l = c.elect('n1')
    c.isolate('n2')
    c.isolate('n3')
    l.proposeConfChange({ kind: 'addLearner', node: 'n4' })
    assert.equal(
      refusal(() => l.proposeConfChange({ kind: 'addLearner', node: 'n5' })),
      'conf-change-pending'
    )
    c.heal()
    c.tickAll(2)
    assert.equal(
      refusal(() => l.proposeConfChange({ kind: 'addLearner', node: 'n5' })),
      'accepted'
    )
  })

  it('§6: a new leader changes the configuration only after committing an entry of its term', () => {
    const c = new Cluster({ voters: 3 })
    c.filter = (m) => m.type !== 'appResp' // the new leader's empty entry is not acknowledged yet
    const n1 = c.elect('n1')
    assert.equal(
      refusal(() => n1.proposeConfChange({ kind: 'addLearner', node: 'n4' })),
      'leader-not-ready'
    )
    c.heal()
    c.tickAll(2)
    assert.equal(
      refusal(() => n1.proposeConfChange({ kind: 'addLearner', node: 'n4' })),
      'accepted'
    )
  })

  const invalid: { name: string; cc: ConfChange; why: RegExp }[] = [
    { name: 'adding an existing voter', cc: { kind: 'addVoter', node: 'n2' }, why: /n2 is already a voter/ },
    { name: 'adding an existing voter as learner', cc: { kind: 'addLearner', node: 'n2' }, why: /already a voter/ },
    { name: 'promoting a non-learner', cc: { kind: 'promoteLearner', node: 'n2' }, why: /not a learner/ },
    { name: 'removing a non-member', cc: { kind: 'removeNode', node: 'n7' }, why: /n7 is not a member/ },
    { name: 'demoting a non-voter', cc: { kind: 'demoteVoter', node: 'n7' }, why: /not a voter/ }
  ]
  for (const tc of invalid) {
    it(`§6: validation refuses ${tc.name}, naming the node`, () => {
      const c = new Cluster({ voters: 3 })
      const l = c.elect('n1')
      assert.throws(
        () => l.proposeConfChange(tc.cc),
        (err: unknown) =>
          err instanceof ProposalError && err.reason === 'invalid-conf-change' && tc.why.test(err.message)
      )
    })
  }

  it('§6: the last voter cannot be removed or demoted', () => {
    const c = new Cluster({ voters: 1, learners: 1 })
    const l = c.elect('n1')
    assert.throws(() => l.proposeConfChange({ kind: 'removeNode', node: 'n1' }), /last voter/)
    assert.throws(() => l.proposeConfChange({ kind: 'demoteVoter', node: 'n1' }), /last voter/)
  })

  it('§6: a removed leader keeps replicating until the change commits, then steps down and hands over', () => {
    const c = new Cluster({ voters: 3 })
    const l = c.elect('n1')
    l.proposeConfChange({ kind: 'removeNode', node: 'n1' })
    assert.equal(l.currentRole, 'leader', 'still leading while the change is uncommitted')
    assert.equal(
      refusal(() => l.propose(enc('x'))),
      'leader-removed'
    )
    c.stabilize()
    assert.equal(l.currentRole, 'follower')
    const next = c.leader()
    assert.ok(next !== null && next.id !== 'n1', 'a remaining voter took over at once (timeoutNow)')
    assert.deepEqual(next.configuration().voters, ['n2', 'n3'])
    for (let i = 0; i < 100; i++) l.tick()
    assert.equal(l.currentRole, 'follower', 'a removed node never campaigns')
  })

  it('§6: a removed follower does not disrupt the cluster', () => {
    const c = new Cluster({ voters: 3 })
    const l = c.elect('n1')
    c.isolate('n3')
    l.proposeConfChange({ kind: 'removeNode', node: 'n3' })
    c.stabilize()
    const term = l.currentTerm
    c.heal()
    for (let i = 0; i < 60; i++) c.tickAll()
    assert.equal(l.currentRole, 'leader')
    assert.equal(l.currentTerm, term)
  })

  it('§6: a voter can be demoted to learner', () => {
    const c = new Cluster({ voters: 3 })
    const l = c.elect('n1')
    l.proposeConfChange({ kind: 'demoteVoter', node: 'n3' })
    c.stabilize()
    assert.deepEqual(c.raft('n3').configuration(), { voters: ['n1', 'n2'], learners: ['n3'] })
    l.propose(enc('y'))
    c.stabilize()
    c.tickAll(1)
    assert.deepEqual(c.node('n3').appliedData(), ['y'])
  })
})

describe('raft configuration-change encoding', () => {
  it('confchange: every change round-trips through its binary encoding', () => {
    for (const kind of ['addVoter', 'addLearner', 'promoteLearner', 'demoteVoter', 'removeNode'] as const) {
      const cc = { kind, node: '12D3KooWPeer' }
      assert.deepEqual(decodeConfEntry(encodeConfEntry(cc)), cc)
    }
    const init = { kind: 'initialize' as const, configuration: { voters: ['b', 'a'], learners: ['c'] } }
    assert.deepEqual(decodeConfEntry(encodeConfEntry(init)), {
      kind: 'initialize',
      configuration: { voters: ['a', 'b'], learners: ['c'] }
    })
  })

  it('confchange: the encoding is version, kind, then a length-prefixed UTF-8 id', () => {
    assert.deepEqual([...encodeConfEntry({ kind: 'removeNode', node: 'ab' })], [1, 5, 0, 2, 0x61, 0x62])
  })

  const malformed: { name: string; bytes: number[]; why: RegExp }[] = [
    { name: 'empty', bytes: [], why: /version: truncated/ },
    { name: 'unknown version', bytes: [2, 1, 0, 1, 0x61], why: /version: unsupported 2/ },
    { name: 'unknown kind', bytes: [1, 9, 0, 1, 0x61], why: /kind: unknown code 9/ },
    { name: 'empty id', bytes: [1, 1, 0, 0], why: /node id length: 0/ },
    { name: 'truncated id', bytes: [1, 1, 0, 5, 0x61], why: /node id: truncated/ },
    { name: 'trailing bytes', bytes: [1, 1, 0, 1, 0x61, 0], why: /1 trailing bytes/ },
    { name: 'invalid UTF-8', bytes: [1, 1, 0, 1, 0xff], why: /not valid UTF-8/ },
    { name: 'duplicate founding member', bytes: [1, 6, 0, 2, 0, 1, 0x61, 0, 1, 0x61, 0, 0], why: /listed twice/ }
  ]
  for (const tc of malformed) {
    it(`confchange: decoding rejects ${tc.name} data, naming the field`, () => {
      assert.throws(
        () => decodeConfEntry(Uint8Array.from(tc.bytes)),
        (err: unknown) => err instanceof ConfChangeError && tc.why.test(err.message)
      )
    })
  }

  it('confchange: the founding configuration is entry 1 of every founding member, identical on all', () => {
    const a = bootstrapState({ voters: ['n2', 'n1'], learners: [] })
    const b = bootstrapState({ voters: ['n1', 'n2'], learners: [] })
    assert.deepEqual(a.entries[0]!.hash, b.entries[0]!.hash)
    assert.equal(a.entries[0]!.type, 'confChange')
    assert.equal(a.hardState.commit, 1)
    assert.throws(() => bootstrapState({ voters: [], learners: ['x'] }), /at least one voter/)
  })
})
