// Log replication (§5.3): consistency check, truncation, commit propagation, backtracking, flow control.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import {
  bootstrapState,
  computeEntryHash,
  makeEntry,
  ZERO_HASH,
  type AppMessage,
  type Entry,
  type EntryType
} from '../../board/raft/index.js'
import { chain, Cluster, enc, msgsOfType, stateWithLog, TestNode } from './harness.js'

const three = { voters: ['n1', 'n2', 'n3'], learners: [] }

/** A follower n2 whose log is: founding entry (1, t1), then terms [1, 2, 2, 3] at 2..5; commit 1. */
function follower(config: ConstructorParameters<typeof TestNode>[2] = {}): TestNode {
  return new TestNode('n2', stateWithLog(three, [1, 2, 2, 3], { term: 3 }), config)
}

function app(n: TestNode, prevIndex: number, prevTerm: number, entries: Entry[], commit: number, term = 4): AppMessage {
  const prevHash = n.raft.termAt(prevIndex) === prevTerm ? n.raft.hashAt(prevIndex)! : new Uint8Array(32).fill(7)
  return { type: 'app', from: 'n1', to: 'n2', term, prevIndex, prevTerm, prevHash, entries, commit }
}

describe('raft §5.3 log replication', () => {
  const cases: { name: string; prevIndex: number; prevTerm: number; reject: boolean; hint?: [number, number] }[] = [
    { name: 'matching last entry', prevIndex: 5, prevTerm: 3, reject: false },
    { name: 'matching earlier entry', prevIndex: 3, prevTerm: 2, reject: false },
    { name: 'prevIndex beyond the log', prevIndex: 8, prevTerm: 3, reject: true, hint: [5, 3] },
    { name: 'term mismatch at the last entry', prevIndex: 5, prevTerm: 4, reject: true, hint: [5, 3] },
    {
      name: 'term mismatch inside the log (leader term higher)',
      prevIndex: 4,
      prevTerm: 3,
      reject: true,
      hint: [4, 2]
    },
    { name: 'term mismatch inside the log (leader term lower)', prevIndex: 5, prevTerm: 2, reject: true, hint: [4, 2] }
  ]
  for (const tc of cases) {
    it(`§5.3: consistency check, ${tc.name}: ${tc.reject ? `reject with hint ${tc.hint}` : 'accept'}`, () => {
      const n = follower()
      n.raft.step(app(n, tc.prevIndex, tc.prevTerm, [], 1))
      const resp = msgsOfType(n.handle(), 'appResp')[0]!
      assert.equal(resp.reject, tc.reject)
      if (tc.reject) {
        assert.equal(resp.index, tc.prevIndex, 'a rejection names the rejected prevIndex')
        assert.deepEqual([resp.hintIndex, resp.hintTerm], tc.hint)
      } else {
        assert.equal(resp.index, tc.prevIndex)
      }
    })
  }

  it('§5.3: a follower deletes a conflicting uncommitted suffix and appends the leader entries', () => {
    const n = follower()
    const fresh = chain([4, 4], n.raft.hashAt(3)!, 3)
    n.raft.step(app(n, 3, 2, fresh, 1))
    const out = n.handle()
    const rd = n.readies[n.readies.length - 1]!
    assert.deepEqual(
      rd.entries.map((e) => [e.index, e.term]),
      [
        [4, 4],
        [5, 4]
      ],
      'the Ready overwrites the stored suffix from index 4'
    )
    assert.deepEqual(
      n.store.entries.map((e) => e.term),
      [1, 1, 2, 4, 4]
    )
    assert.equal(msgsOfType(out, 'appResp')[0]!.index, 5)
  })

  it('§5.3: an append whose entries are already present truncates nothing (reordered or duplicated message)', () => {
    const n = follower()
    const present = [n.raft.entryAt(3)!, n.raft.entryAt(4)!]
    n.raft.step(app(n, 2, 1, present, 1))
    n.handle()
    assert.equal(n.raft.lastIndex, 5)
    assert.equal(
      msgsOfType(
        n.readies.flatMap((r) => r.messages),
        'appResp'
      )[0]!.index,
      4
    )
  })

  it('§5.3: the follower commit index is min(leader commit, index of the last new entry)', () => {
    const n = follower()
    n.raft.step(app(n, 2, 1, [n.raft.entryAt(3)!], 5))
    n.handle()
    assert.equal(n.raft.commitIndex, 3, 'entries 4 and 5 were not vouched for by this message')
    assert.deepEqual(
      n.applied.map((e) => e.index),
      [1, 2, 3]
    )
  })

  it('§5.3: the leader backs up over a divergent follower log in one step per term (fast backtracking)', () => {
    // Leader log terms 1 3 3 3 5 5 5 5 5, follower 1 1 1 1 2 2 (etcd's example).
    const c = new Cluster({ voters: 3 })
    const lead = stateWithLog(three, [3, 3, 3, 5, 5, 5, 5, 5], { term: 5 })
    c.nodes.clear()
    c.add('n1', lead)
    c.add('n3', lead)
    c.add('n2', stateWithLog(three, [1, 1, 1, 2, 2], { term: 2 }))
    const l = c.elect('n1')
    c.stabilize()
    const rejects = msgsOfType(c.delivered, 'appResp').filter((m) => m.from === 'n2' && m.reject)
    assert.ok(rejects.length <= 2, `${rejects.length} rejections`)
    assert.deepEqual(c.raft('n2').hashAt(l.lastIndex), l.hashAt(l.lastIndex))
    assert.equal(c.raft('n2').commitIndex, l.commitIndex)
  })

  it('§5.3: a follower with a long divergent tail of higher terms gives a hint that skips it', () => {
    // Leader 1 3 3 3 3 3 3 3 7, follower 1 3 3 4 4 5 5 5 6: the follower points at index 3.
    const c = new Cluster({ voters: 3 })
    const lead = stateWithLog(three, [3, 3, 3, 3, 3, 3, 3, 7], { term: 7 })
    const first = lead.entries.slice(0, 3)
    const divergent = chain([4, 4, 5, 5, 5, 6], first[2]!.hash, 3)
    c.nodes.clear()
    c.add('n1', lead)
    c.add('n3', lead)
    c.add('n2', {
      hardState: { term: 6, vote: null, commit: 1 },
      snapshot: lead.snapshot,
      entries: [...first, ...divergent]
    })
    const l = c.elect('n1')
    c.stabilize()
    const rejects = msgsOfType(c.delivered, 'appResp').filter((m) => m.from === 'n2' && m.reject)
    assert.ok(rejects.length <= 2, `${rejects.length} rejections`)
    assert.deepEqual(c.raft('n2').hashAt(l.lastIndex), l.hashAt(l.lastIndex))
  })

  it('§5.3: appends are pipelined in replicate state, at most maxInflightMsgs in flight', () => {
    const c = new Cluster({ voters: 3, config: { maxInflightMsgs: 2, maxMessageBytes: 1 } })
    const l = c.elect('n1')
    for (let i = 0; i < 5; i++) l.propose(enc(`p${i}`))
    const out = c.node('n1').handle()
    const toN2 = msgsOfType(out, 'app').filter((m) => m.to === 'n2')
    assert.equal(toN2.length, 2, 'two in flight, one entry each')
    assert.deepEqual(
      toN2.map((m) => m.entries.map((e) => e.index)),
      [[l.lastIndex - 4], [l.lastIndex - 3]]
    )
    // An acknowledgement frees a slot.
    c.deliver(toN2[0]!)
    for (const m of c.node('n2').handle()) c.deliver(m)
    const more = msgsOfType(c.node('n1').handle(), 'app').filter((m) => m.to === 'n2')
    assert.equal(more.length, 1)
    assert.equal(more[0]!.entries[0]!.index, l.lastIndex - 2)
  })

  it('§5.3: entries proposed together travel in one append, bounded by maxMessageBytes', () => {
    const big = new Cluster({ voters: 3 })
    const l = big.elect('n1')
    for (let i = 0; i < 5; i++) l.propose(enc(`p${i}`))
    const toN2 = msgsOfType(big.node('n1').handle(), 'app').filter((m) => m.to === 'n2')
    assert.equal(toN2.length, 1)
    assert.equal(toN2[0]!.entries.length, 5)

    const small = new Cluster({ voters: 3, config: { maxMessageBytes: 120 } }) // ~two 52-byte entries
    const l2 = small.elect('n1')
    for (let i = 0; i < 5; i++) l2.propose(enc(`p${i}`))
    const msgs = msgsOfType(small.node('n1').handle(), 'app').filter((m) => m.to === 'n2')
    assert.deepEqual(
      msgs.map((m) => m.entries.length),
      [2, 2, 1]
    )
  })

  it('§5.3: a follower in probe state gets one append at a time', () => {
    const c = new Cluster({ voters: 3 })
    const l = c.elect('n1')
    c.isolate('n3')
    for (let i = 0; i < 3; i++) {
      l.propose(enc(`p${i}`))
      c.stabilize()
    }
    c.heal()
    // The leader still replicates optimistically to n3; n3 rejects, and is probed.
    assert.equal(l.status().progress!.n3!.state, 'replicate')
    l.propose(enc('q'))
    const held = c.node('n1').handle()
    for (const m of held.filter((m) => m.to === 'n3')) c.deliver(m)
    for (const m of c.node('n3').handle()) c.deliver(m)
    assert.equal(l.status().progress!.n3!.state, 'probe')
    const probes = msgsOfType(c.node('n1').handle(), 'app').filter((m) => m.to === 'n3')
    assert.equal(probes.length, 1)
    l.propose(enc('r'))
    const later = c.node('n1').handle()
    assert.equal(msgsOfType(later, 'app').filter((m) => m.to === 'n3').length, 0, 'paused until an answer')
    for (const m of [...held.filter((m) => m.to !== 'n3'), ...probes, ...later]) c.deliver(m)
    c.stabilize()
    c.tickAll(2)
    assert.equal(c.raft('n3').commitIndex, l.commitIndex)
    assert.deepEqual(c.node('n3').appliedData(), ['p0', 'p1', 'p2', 'q', 'r'])
  })

  it('§5.3: a heartbeat never tells a follower to commit beyond what it is known to hold', () => {
    const c = new Cluster({ voters: 3 })
    const l = c.elect('n1')
    c.isolate('n3')
    l.propose(enc('a'))
    c.stabilize()
    const match3 = l.status().progress!.n3!.match
    assert.ok(l.commitIndex > match3)
    c.tick('n1')
    const hb = msgsOfType(c.node('n1').handle(), 'heartbeat').find((m) => m.to === 'n3')!
    assert.equal(hb.commit, match3)
  })

  it('§5.3: a lost append is recovered through heartbeat responses', () => {
    const c = new Cluster({ voters: 3 })
    const l = c.elect('n1')
    c.filter = (m) => !(m.type === 'app' && m.to === 'n2' && m.entries.length > 0)
    l.propose(enc('lost'))
    c.stabilize()
    c.heal()
    c.tickAll(3)
    assert.deepEqual(c.node('n2').appliedData(), ['lost'])
  })

  it('§5.3: entries are applied in order on every node, exactly once', () => {
    const c = new Cluster({ voters: 5 })
    const l = c.elect('n1')
    for (let i = 0; i < 20; i++) l.propose(enc(`v${i}`))
    c.stabilize()
    c.tickAll(2)
    const expected = Array.from({ length: 20 }, (_, i) => `v${i}`)
    for (const n of c.nodes.values()) assert.deepEqual(n.appliedData(), expected, n.id)
  })
})

describe('raft hash chain', () => {
  it('hash chain: entries hash over the previous hash, index, term, type and data', () => {
    const a = chain([1, 1, 2])
    const b = chain([1, 1, 2])
    assert.deepEqual(a[2]!.hash, b[2]!.hash, 'deterministic')
    const c = chain([1, 2, 2])
    assert.notDeepEqual(a[2]!.hash, c[2]!.hash, 'a different earlier entry changes every later hash')
    const d = makeEntry(a[1]!.hash, 3, 2, 'confChange', a[2]!.data)
    assert.notDeepEqual(d.hash, a[2]!.hash, 'the type is covered')
  })

  it('hash chain: a follower refuses entries that do not chain, raising invalid-append', () => {
    const n = follower()
    const good = chain([4, 4], n.raft.hashAt(5)!, 5)
    const forged = [good[0]!, { ...good[1]!, data: enc('forged') }]
    n.raft.step(app(n, 5, 3, forged, 1))
    const out = n.handle()
    assert.equal(out.length, 0, 'no acknowledgement')
    assert.equal(n.raft.lastIndex, 5)
    assert.equal(n.alarms.length, 1)
    assert.equal(n.alarms[0]!.kind, 'invalid-append')
  })

  it('hash chain: with verifyHashChain the prevIndex check compares hashes too', () => {
    for (const verify of [true, false]) {
      const n = follower({ verifyHashChain: verify })
      // Same index and term as the local entry 5, but a different hash.
      const fake = new Uint8Array(32).fill(9)
      n.raft.step({
        type: 'app',
        from: 'n1',
        to: 'n2',
        term: 4,
        prevIndex: 5,
        prevTerm: 3,
        prevHash: fake,
        entries: [],
        commit: 1
      })
      const resp = msgsOfType(n.handle(), 'appResp')[0]!
      assert.equal(resp.reject, verify, `verifyHashChain=${verify}`)
    }
  })

  /**
   * The entry hash of docs/raft.md, built by hand from its byte layout: sha256("poolboard/raft/entry/v1"
   * || prevHash || u64be(index) || u64be(term) || u8(type: 0 normal, 1 confChange) || u32be(data.length) || data).
   */
  function documentedEntryHash(
    prevHash: Uint8Array,
    index: number,
    term: number,
    type: EntryType,
    data: Uint8Array
  ): Uint8Array {
    const fields = Buffer.alloc(8 + 8 + 1 + 4)
    fields.writeBigUInt64BE(BigInt(index), 0)
    fields.writeBigUInt64BE(BigInt(term), 8)
    fields.writeUInt8(type === 'normal' ? 0 : 1, 16)
    fields.writeUInt32BE(data.length, 17)
    const h = createHash('sha256')
    h.update(Buffer.from('poolboard/raft/entry/v1', 'utf8'))
    h.update(prevHash)
    h.update(fields)
    h.update(data)
    return new Uint8Array(h.digest())
  }

  it('hash chain: computeEntryHash and makeEntry follow the documented byte layout (known answers)', () => {
    const cases: { prevHash: Uint8Array; index: number; term: number; type: EntryType; data: Uint8Array }[] = [
      { prevHash: ZERO_HASH, index: 1, term: 1, type: 'normal', data: new Uint8Array(0) },
      { prevHash: new Uint8Array(32).fill(0xab), index: 7, term: 3, type: 'normal', data: enc('payload') },
      // Both words of the u64 fields, and the confChange type byte.
      {
        prevHash: new Uint8Array(32).fill(0x5c),
        index: 2 ** 32 + 3,
        term: 2 ** 40 + 9,
        type: 'confChange',
        data: Uint8Array.of(1, 5, 0, 1, 0x61)
      }
    ]
    for (const { prevHash, index, term, type, data } of cases) {
      const expected = documentedEntryHash(prevHash, index, term, type, data)
      assert.deepEqual(computeEntryHash(prevHash, index, term, type, data), expected, `index ${index}`)
      assert.deepEqual(makeEntry(prevHash, index, term, type, data).hash, expected, `index ${index}`)
    }
  })

  it('hash chain: a leader computes the hash of the entries it appends', () => {
    const c = new Cluster({ voters: 1 })
    const l = c.elect('n1')
    const r = l.propose(enc('x'))
    const e = l.entryAt(r.index)!
    // The founding entry, then every entry chained on the one before it.
    const founding = bootstrapState({ voters: ['n1'], learners: [] }).entries[0]!
    assert.deepEqual(l.hashAt(1), documentedEntryHash(ZERO_HASH, 1, 1, 'confChange', founding.data))
    for (let i = 2; i <= r.index; i++) {
      const ei = l.entryAt(i)!
      assert.deepEqual(ei.hash, documentedEntryHash(l.hashAt(i - 1)!, i, ei.term, ei.type, ei.data), `entry ${i}`)
    }
    assert.deepEqual(e.hash, documentedEntryHash(l.hashAt(r.index - 1)!, r.index, r.term, 'normal', enc('x')))
  })
})
