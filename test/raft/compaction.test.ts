// Log compaction and snapshots (§7).

import assert from 'node:assert/strict'
import { joiningState } from '../../board/raft/index.js'
import { Cluster, enc, msgsOfType } from './harness.js'

describe('raft §7 log compaction', () => {
  it('§7: compact(index) records the snapshot and drops the log prefix', () => {
    const c = new Cluster({ voters: 3 })
    const l = c.elect('n1')
    for (let i = 0; i < 5; i++) l.propose(enc(`v${i}`))
    c.stabilize()
    const at = l.commitIndex - 1
    const hash = l.hashAt(at)
    const meta = l.compact(at, enc('state'))!
    assert.equal(meta.index, at)
    assert.deepEqual(meta.hash, hash, 'the snapshot records the hash of its last entry')
    assert.deepEqual(meta.configuration.voters, ['n1', 'n2', 'n3'])
    assert.equal(l.status().firstIndex, at + 1)
    assert.equal(l.entryAt(at), undefined)
    assert.equal(l.compact(at - 1, enc('older')), null, 'compacting behind the snapshot is a no-op')
  })

  it('§7: compacting beyond the applied index is refused', () => {
    const c = new Cluster({ voters: 1 })
    const l = c.elect('n1')
    const r = l.propose(enc('x'))
    // Committed at once (single voter) but not applied until the Ready is handled.
    assert.throws(() => l.compact(r.index, enc('s')), /only \d+ is applied/)
  })

  it('§7: a follower whose next entry is compacted away gets the snapshot, restores from it, and catches up', () => {
    const c = new Cluster({ voters: 3 })
    const l = c.elect('n1')
    c.isolate('n3')
    for (let i = 0; i < 6; i++) l.propose(enc(`v${i}`))
    c.stabilize()
    c.node('n1').handle()
    l.compact(l.commitIndex, enc('app state at commit'))
    l.propose(enc('after'))
    c.stabilize()
    c.heal()
    c.tickAll(3)
    const n3 = c.node('n3')
    assert.equal(n3.snapshotsRestored.length, 1)
    assert.equal(n3.snapshotsRestored[0]!.meta.index, l.snapshotMeta().index)
    assert.deepEqual(n3.snapshotsRestored[0]!.data, enc('app state at commit'))
    assert.equal(n3.store.snapshot.meta.index, l.snapshotMeta().index, 'persisted through the Ready')
    assert.deepEqual(n3.appliedData(), ['after'], 'entries after the snapshot are applied as usual')
    assert.equal(n3.raft.commitIndex, l.commitIndex)
    const snapReady = n3.readies.find((r) => r.snapshot !== null)!
    assert.equal(snapReady.committedEntries.length, 0, 'never committed entries in the Ready that carries a snapshot')
  })

  it('§7: a new node added after compaction is brought up by snapshot', () => {
    const c = new Cluster({ voters: 3 })
    const l = c.elect('n1')
    for (let i = 0; i < 4; i++) l.propose(enc(`v${i}`))
    c.stabilize()
    c.node('n1').handle()
    l.compact(l.commitIndex, enc('s'))
    c.add('n4', joiningState())
    l.proposeConfChange({ kind: 'addLearner', node: 'n4' })
    c.stabilize()
    c.tickAll(3)
    const n4 = c.raft('n4')
    assert.deepEqual(n4.configuration(), { voters: ['n1', 'n2', 'n3'], learners: ['n4'] })
    assert.equal(n4.commitIndex, l.commitIndex)
  })

  it('§7: a snapshot is not resent while one is in flight, and is resent after snapshotTimeoutTicks', () => {
    const c = new Cluster({ voters: 3, config: { snapshotTimeoutTicks: 20 } })
    const l = c.elect('n1')
    c.isolate('n3')
    for (let i = 0; i < 4; i++) l.propose(enc(`v${i}`))
    c.stabilize()
    c.node('n1').handle()
    l.compact(l.commitIndex, enc('s'))
    c.heal()
    let snaps = 0
    c.filter = (m) => {
      if (m.type !== 'snap') return true
      snaps++
      return false // every snapshot is lost
    }
    c.tickAll(10)
    assert.equal(snaps, 1, 'one snapshot, then the follower is paused')
    assert.equal(l.status().progress!.n3!.state, 'snapshot')
    c.tickAll(15)
    assert.equal(snaps, 2, 'probed again after the timeout, which sends a fresh snapshot')
    c.heal()
    c.tickAll(25)
    assert.equal(c.raft('n3').commitIndex, l.commitIndex)
    assert.equal(l.status().progress!.n3!.state, 'replicate')
  })

  it('§7: a stale snapshot (the follower already has it) only moves the commit index', () => {
    const c = new Cluster({ voters: 3 })
    const l = c.elect('n1')
    for (let i = 0; i < 3; i++) l.propose(enc(`v${i}`))
    c.stabilize()
    const n2 = c.node('n2')
    c.node('n1').handle()
    const snap = { meta: l.compact(l.commitIndex, enc('s'))!, data: enc('s') }
    const before = n2.raft.lastIndex
    n2.raft.step({ type: 'snap', from: 'n1', to: 'n2', term: l.currentTerm, snapshot: snap })
    const out = n2.handle()
    assert.equal(n2.snapshotsRestored.length, 0, 'the log already holds it: nothing to restore')
    assert.equal(n2.raft.lastIndex, before)
    assert.equal(msgsOfType(out, 'appResp')[0]!.index, n2.raft.commitIndex)
  })
})
