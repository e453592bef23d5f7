// Safety (§5.4): commitment rule (Figure 8), committed entries are never truncated, and the
// committed-entry-conflict alarm.

import assert from 'node:assert/strict'
import { makeEntry, type SnapshotMeta } from '../../board/raft/index.js'
import { chain, Cluster, enc, msgsOfType, staggered, stateWithLog, TestNode } from './harness.js'

const three = { voters: ['n1', 'n2', 'n3'], learners: [] }

describe('raft §5.4 safety', () => {
  it('§5.4.2: a leader does not commit an entry of an earlier term by counting replicas (Figure 8)', () => {
    // n1 led term 2 and wrote entry 2 (term 2) only to itself. It now wins term 4 and replicates
    // entry 2 to n2, but its own entry of term 4 (index 3) does not get through.
    const c = new Cluster({ voters: 3, config: { maxMessageBytes: 1 } })
    c.nodes.clear()
    c.add('n1', stateWithLog(three, [2], { term: 3 }), { maxMessageBytes: 1 })
    c.add('n2', stateWithLog(three, [], { term: 3 }), { maxMessageBytes: 1 })
    c.add('n3', stateWithLog(three, [], { term: 3 }), { maxMessageBytes: 1 })
    // Entry 3 is dropped once a follower holds entry 2.
    c.filter = (m) => !(m.type === 'app' && m.entries.some((e) => e.index === 3) && c.raft(m.to).lastIndex >= 2)
    const l = c.elect('n1')
    assert.equal(l.currentTerm, 4)
    c.tickAll(3)
    assert.equal(l.status().progress!.n2!.match, 2, 'entry 2 (term 2) is on a majority')
    assert.equal(l.commitIndex, 1, '...but not committed: it is not of the current term')
    // Once the term-4 entry is on a majority, both commit.
    c.heal()
    c.tickAll(3)
    assert.equal(l.commitIndex, 3)
  })

  it('§5.4.2: the Figure 8 scenario cannot overwrite a committed entry', () => {
    // After the leader above committed index 3, a node with a higher last term from a later
    // uncommitted leadership (term 3 entry at index 2) cannot win: its log is less up-to-date.
    const c = new Cluster({ voters: 3 })
    c.nodes.clear()
    c.add('n1', stateWithLog(three, [2], { term: 3 }))
    c.add('n2', stateWithLog(three, [], { term: 3 }))
    c.add('n5', stateWithLog({ voters: ['n1', 'n2', 'n5'], learners: [] }, [3], { term: 3 }))
    const l = c.elect('n1')
    l.propose(enc('x'))
    c.stabilize()
    assert.equal(l.commitIndex, 4)
    const n2 = c.node('n2')
    n2.raft.step({ type: 'vote', from: 'n5', to: 'n2', term: 9, lastIndex: 2, lastTerm: 3, force: true })
    assert.equal(msgsOfType(n2.handle(), 'voteResp')[0]!.reject, true)
  })

  it('§5.4.3: a follower never truncates a committed entry; it raises committed-entry-conflict instead', () => {
    for (const verifyHashChain of [true, false]) {
      // Follower log terms 1 1 2 2 3 (indexes 1..5), commit 4.
      const n = new TestNode('n2', stateWithLog(three, [1, 2, 2, 3], { term: 3, commit: 4 }), { verifyHashChain })
      const before = n.raft.hashAt(5)
      // A "leader" of term 9 claims index 3 holds a term-5 entry.
      const rewritten = chain([5, 5, 5], n.raft.hashAt(2)!, 2)
      n.raft.step({
        type: 'app',
        from: 'n1',
        to: 'n2',
        term: 9,
        prevIndex: 2,
        prevTerm: 1,
        prevHash: n.raft.hashAt(2)!,
        entries: rewritten,
        commit: 5
      })
      const out = n.handle()
      assert.equal(msgsOfType(out, 'appResp').length, 0, 'refused without an acknowledgement')
      assert.deepEqual(n.raft.hashAt(5), before, 'log untouched')
      assert.equal(n.raft.commitIndex, 4)
      assert.equal(n.alarms.length, 1)
      const a = n.alarms[0]!
      assert.equal(a.kind, 'committed-entry-conflict')
      if (a.kind === 'committed-entry-conflict') {
        assert.equal(a.index, 3)
        assert.equal(a.localTerm, 2)
        assert.equal(a.offeredTerm, 5)
        assert.equal(a.from, 'n1')
        assert.equal(a.term, 9)
        assert.deepEqual(a.offeredHash, rewritten[0]!.hash)
      }
    }
  })

  it('§5.4.3: a committed entry at prevIndex that does not match raises the alarm (no backtracking below commit)', () => {
    const n = new TestNode('n2', stateWithLog(three, [1, 2, 2, 3], { term: 3, commit: 4 }), {})
    n.raft.step({
      type: 'app',
      from: 'n1',
      to: 'n2',
      term: 9,
      prevIndex: 4,
      prevTerm: 7,
      prevHash: new Uint8Array(32),
      entries: [],
      commit: 4
    })
    assert.equal(n.handle().length, 0)
    assert.equal(n.alarms[0]?.kind, 'committed-entry-conflict')
  })

  it('§5.4.3: with verifyHashChain, a rewritten committed entry that keeps index and term raises the alarm', () => {
    for (const verifyHashChain of [true, false]) {
      const n = new TestNode('n2', stateWithLog(three, [1, 2, 2, 3], { term: 3, commit: 4 }), { verifyHashChain })
      const forged = makeEntry(n.raft.hashAt(2)!, 3, 2, 'normal', enc('forged statement'))
      n.raft.step({
        type: 'app',
        from: 'n1',
        to: 'n2',
        term: 4,
        prevIndex: 2,
        prevTerm: 1,
        prevHash: n.raft.hashAt(2)!,
        entries: [forged],
        commit: 4
      })
      n.handle()
      if (verifyHashChain) {
        assert.equal(n.alarms[0]?.kind, 'committed-entry-conflict')
      } else {
        assert.equal(n.alarms.length, 0, 'plain Raft compares terms only and sees a match')
      }
      assert.notDeepEqual(n.raft.hashAt(3), forged.hash, 'the committed entry is kept either way')
    }
  })

  it('§5.4.3: a snapshot that contradicts a committed entry raises the alarm', () => {
    const n = new TestNode('n2', stateWithLog(three, [1, 2, 2, 3], { term: 3, commit: 4 }), {})
    const meta: SnapshotMeta = { index: 3, term: 2, hash: new Uint8Array(32).fill(1), configuration: three }
    n.raft.step({ type: 'snap', from: 'n1', to: 'n2', term: 4, snapshot: { meta, data: enc('s') } })
    n.handle()
    assert.equal(n.alarms[0]?.kind, 'committed-entry-conflict')
    assert.equal(n.raft.snapshotMeta().index, 0)
  })

  it('§5.4: an honest cluster raises no alarm through leader changes and lagging followers', () => {
    const c = new Cluster({ voters: 5, rand: staggered })
    let l = c.elect('n1')
    for (let round = 0; round < 5; round++) {
      const old = l
      c.isolate(old.id)
      old.propose(enc(`lost${round}`)) // never reaches anyone
      c.stabilize()
      for (let i = 0; i < 200 && (c.leader() === old || c.leader() === null); i++) c.tickAll()
      l = c.leader()!
      assert.notEqual(l, old)
      l.propose(enc(`kept${round}`))
      c.stabilize()
      c.heal()
      c.tickAll(3)
    }
    for (const n of c.nodes.values()) {
      assert.equal(n.alarms.length, 0, n.id)
      assert.deepEqual(n.appliedData(), ['kept0', 'kept1', 'kept2', 'kept3', 'kept4'], n.id)
    }
  })
})
