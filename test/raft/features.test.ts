// ReadIndex (thesis §6.4), leadership transfer (§3.10), back-pressure, restart validation, config,
// and the Ready/advance contract.

import assert from 'node:assert/strict'
import {
  bootstrapState,
  InconsistentStoreError,
  makeEntry,
  ProposalError,
  Raft,
  RaftConfigError,
  resolveConfig,
  type PersistedState
} from '../../board/raft/index.js'
import { chain, Cluster, dec, enc, msgsOfType, refusal, stateWithLog, TestNode } from './harness.js'

const three = { voters: ['n1', 'n2', 'n3'], learners: [] }

describe('raft read index (linearizable reads)', () => {
  it('read index: the leader answers after a heartbeat quorum, with its commit index at arrival', () => {
    const c = new Cluster({ voters: 3 })
    const l = c.elect('n1')
    l.propose(enc('a'))
    c.stabilize()
    const commit = l.commitIndex
    l.readIndex(enc('r1'))
    const out = c.node('n1').handle()
    assert.equal(c.node('n1').readStates.length, 0, 'not before the quorum round')
    const hbs = msgsOfType(out, 'heartbeat')
    assert.equal(hbs.length, 2)
    assert.equal(dec(hbs[0]!.context!), 'r1')
    c.deliver(hbs[0]!)
    for (const m of c.node('n2').handle()) c.deliver(m)
    c.node('n1').handle()
    assert.deepEqual(
      c.node('n1').readStates.map((r) => [r.index, dec(r.context)]),
      [[commit, 'r1']]
    )
  })

  it('read index: a lone voter restarted with an older commit index answers only after committing in its term', () => {
    // Entries 2..3 are stored but the commit index it restarted with is 2: a driver need not sync a
    // batch that only raises the commit index, so index 3 may have been committed and read before.
    const initial = stateWithLog({ voters: ['n1'], learners: [] }, [2, 2], { term: 2, vote: 'n1', commit: 2 })
    const n = new TestNode('n1', initial, {})
    // Leader at once (it is the only voter), with its no-op appended but not yet written.
    for (let i = 0; i < 40 && n.raft.currentRole !== 'leader'; i++) n.raft.tick()
    assert.equal(n.raft.currentRole, 'leader')
    n.raft.readIndex(enc('r'))
    n.handle()
    assert.ok(n.readStates.length > 0)
    assert.ok(n.readStates[0]!.index >= 3, `the read point ${n.readStates[0]!.index} covers index 3`)
  })

  it('read index: a leader cut off from the quorum never answers', () => {
    const c = new Cluster({ voters: 3 })
    const l = c.elect('n1')
    c.isolate('n1')
    l.readIndex(enc('r'))
    c.stabilize()
    c.tickAll(5)
    assert.equal(c.node('n1').readStates.length, 0)
  })

  it('read index: a new leader answers only after committing an entry of its term', () => {
    const c = new Cluster({ voters: 3 })
    c.filter = (m) => m.type !== 'appResp'
    const l = c.elect('n1')
    l.readIndex(enc('early'))
    c.stabilize()
    c.tickAll(2)
    assert.equal(c.node('n1').readStates.length, 0)
    c.heal()
    c.tickAll(2)
    assert.equal(c.node('n1').readStates.length, 1)
    assert.equal(c.node('n1').readStates[0]!.index, l.commitIndex)
  })

  it('read index: a follower forwards the request to the leader and gets the read state back', () => {
    const c = new Cluster({ voters: 3 })
    const l = c.elect('n1')
    l.propose(enc('a'))
    c.stabilize()
    c.raft('n2').readIndex(enc('f'))
    c.stabilize()
    const rs = c.node('n2').readStates
    assert.deepEqual(
      rs.map((r) => [r.index, dec(r.context)]),
      [[l.commitIndex, 'f']]
    )
  })

  it('read index: a single voter answers at once', () => {
    const c = new Cluster({ voters: 1 })
    const l = c.elect('n1')
    l.readIndex(enc('s'))
    c.node('n1').handle()
    assert.equal(c.node('n1').readStates.length, 1)
  })

  it('read index: without a known leader the request is refused', () => {
    const n = new TestNode('n2', stateWithLog(three, []), {})
    assert.equal(
      refusal(() => n.raft.readIndex(enc('x'))),
      'not-leader'
    )
  })

  it('read index: acks to a later request also confirm earlier ones', () => {
    const c = new Cluster({ voters: 3 })
    const l = c.elect('n1')
    c.isolate('n2')
    c.isolate('n3')
    l.readIndex(enc('a'))
    l.readIndex(enc('b'))
    c.stabilize()
    c.heal()
    c.tickAll(1)
    assert.deepEqual(
      c.node('n1').readStates.map((r) => dec(r.context)),
      ['a', 'b']
    )
  })
})

describe('raft leadership transfer', () => {
  it('transfer: the leader catches the target up, sends timeoutNow, and the target wins despite leases', () => {
    const c = new Cluster({ voters: 3 })
    const l = c.elect('n1')
    c.isolate('n3')
    l.propose(enc('a'))
    c.stabilize()
    c.heal()
    l.transferLeadership('n3')
    c.stabilize()
    assert.equal(c.raft('n3').currentRole, 'leader')
    assert.equal(l.currentRole, 'follower')
    assert.ok(msgsOfType(c.delivered, 'timeoutNow').length === 1)
  })

  it('transfer: proposals are refused while a transfer is in progress, and it aborts after an election timeout', () => {
    const c = new Cluster({ voters: 3, config: { electionTicks: 10 } })
    const l = c.elect('n1')
    c.isolate('n3')
    l.transferLeadership('n3')
    assert.equal(
      refusal(() => l.propose(enc('x'))),
      'transferring'
    )
    c.tick('n1', 10)
    c.stabilize()
    assert.equal(l.currentRole, 'leader')
    assert.equal(
      refusal(() => l.propose(enc('x'))),
      'accepted'
    )
  })

  it('transfer: forwarded by a follower; invalid targets are refused', () => {
    const c = new Cluster({ voters: 3, learners: 1 })
    const l = c.elect('n1')
    c.raft('n2').transferLeadership('n2')
    c.stabilize()
    assert.equal(c.raft('n2').currentRole, 'leader')
    const l2 = c.raft('n2')
    assert.equal(
      refusal(() => l2.transferLeadership('n4')),
      'invalid-transfer-target'
    )
    assert.equal(
      refusal(() => l2.transferLeadership('n2')),
      'invalid-transfer-target'
    )
    assert.equal(l.currentRole, 'follower')
  })
})

describe('raft learner heartbeats', () => {
  // docs/raft.md, "Configuration": learners get heartbeats every learnerHeartbeatTicks, voters every
  // heartbeatTicks; a learner still hears its leader before it would forget it (electionTicks).
  it('learners are heartbeaten less often than voters, often enough to keep their leader', () => {
    const c = new Cluster({
      voters: 3,
      learners: 2,
      config: { electionTicks: 10, heartbeatTicks: 1, learnerHeartbeatTicks: 5 }
    })
    c.elect('n1')
    const from = c.delivered.length
    for (let i = 0; i < 20; i++) c.tickAll(1)
    const beats = c.delivered.slice(from).filter((m) => m.type === 'heartbeat')
    const to = (id: string): number => beats.filter((m) => m.to === id).length
    assert.equal(to('n2'), 20)
    assert.equal(to('n3'), 20)
    assert.equal(to('n4'), 4)
    assert.equal(to('n5'), 4)
    assert.equal(c.raft('n4').leaderId, 'n1')
    assert.equal(c.raft('n5').leaderId, 'n1')
  })

  it("refuses a learner heartbeat interval below the voters' or not below the election timeout", () => {
    const rand = (): number => 0
    assert.throws(
      () => resolveConfig({ id: 'n1', rand, heartbeatTicks: 2, learnerHeartbeatTicks: 1, electionTicks: 10 }),
      /learnerHeartbeatTicks/
    )
    assert.throws(
      () => resolveConfig({ id: 'n1', rand, heartbeatTicks: 1, learnerHeartbeatTicks: 10, electionTicks: 10 }),
      /learnerHeartbeatTicks/
    )
  })
})

describe('raft back-pressure', () => {
  it('back-pressure: proposals beyond maxUncommittedBytes are refused until entries commit', () => {
    const c = new Cluster({ voters: 3, config: { maxUncommittedBytes: 10 } })
    const l = c.elect('n1')
    c.isolate('n2')
    c.isolate('n3')
    l.propose(enc('123456'))
    assert.equal(
      refusal(() => l.propose(enc('123456'))),
      'too-many-uncommitted-bytes'
    )
    c.heal()
    c.stabilize()
    c.tickAll(1)
    assert.equal(
      refusal(() => l.propose(enc('123456'))),
      'accepted'
    )
  })

  it('back-pressure: one proposal larger than the limit is accepted when nothing is uncommitted', () => {
    const c = new Cluster({ voters: 3, config: { maxUncommittedBytes: 4 } })
    const l = c.elect('n1')
    assert.equal(
      refusal(() => l.propose(enc('123456'))),
      'accepted'
    )
  })

  it('back-pressure: a follower refuses proposals and names the leader', () => {
    const c = new Cluster({ voters: 3 })
    c.elect('n1')
    try {
      c.raft('n2').propose(enc('x'))
      assert.fail('accepted')
    } catch (err) {
      assert.ok(err instanceof ProposalError)
      assert.equal(err.reason, 'not-leader')
      assert.equal(err.leader, 'n1')
      assert.match(err.message, /the leader is n1/)
    }
  })

  it('back-pressure: a payload above maxEntryBytes is refused', () => {
    const c = new Cluster({ voters: 1, config: { maxEntryBytes: 3 } })
    const l = c.elect('n1')
    assert.equal(
      refusal(() => l.propose(enc('1234'))),
      'entry-too-large'
    )
  })

  it('back-pressure: the read queue is bounded by maxPendingReads', () => {
    const c = new Cluster({ voters: 3, config: { maxPendingReads: 2 } })
    const l = c.elect('n1')
    c.isolate('n1')
    l.readIndex(enc('1'))
    l.readIndex(enc('2'))
    assert.equal(
      refusal(() => l.readIndex(enc('3'))),
      'too-many-pending-reads'
    )
  })
})

describe('raft restart and store validation', () => {
  it('restart: term, vote, log and commit are restored; committed entries after `applied` are handed out again', () => {
    const c = new Cluster({ voters: 3 })
    const l = c.elect('n1')
    l.propose(enc('a'))
    l.propose(enc('b'))
    c.stabilize()
    c.tickAll(1)
    const n2 = c.node('n2')
    const st = n2.raft.status()
    n2.restart()
    const again = n2.raft.status()
    assert.equal(again.term, st.term)
    assert.equal(again.vote, st.vote)
    assert.equal(again.commit, st.commit)
    assert.equal(again.lastIndex, st.lastIndex)
    n2.handle()
    assert.deepEqual(n2.appliedData(), ['a', 'b'])
  })

  it('restart: `applied` skips entries the application already holds', () => {
    const st = stateWithLog(three, [1, 1], { commit: 3 })
    const r = new Raft({ id: 'n1', rand: () => 0 }, { ...st, applied: 2 })
    const rd = r.ready()
    assert.deepEqual(
      rd.committedEntries.map((e) => e.index),
      [3]
    )
  })

  const good = stateWithLog(three, [1, 2, 2], { term: 2, commit: 3 })
  const broken: { name: string; state: PersistedState; why: RegExp }[] = [
    {
      name: 'commit beyond the last stored entry',
      state: { ...good, hardState: { ...good.hardState, commit: 9 } },
      why: /commit 9 is beyond the last stored index 4/
    },
    {
      name: 'a gap in the entries',
      state: { ...good, entries: [good.entries[0]!, good.entries[2]!] },
      why: /not contiguous: expected index 2, found 3/
    },
    {
      name: 'a broken hash chain',
      state: { ...good, entries: [...good.entries.slice(0, 3), { ...good.entries[3]!, data: enc('tampered') }] },
      why: /hash chain broken at entry 4/
    },
    {
      name: 'an entry above the persisted term',
      state: { ...good, hardState: { ...good.hardState, term: 1 } },
      why: /entry 3 has term 2 above hardState.term 1/
    },
    {
      name: 'terms going down',
      state: { ...good, entries: [good.entries[0]!, ...chain([2, 1], good.entries[0]!.hash, 1)] },
      why: /term 1 below the previous term 2/
    },
    { name: 'applied beyond commit', state: { ...good, applied: 4 }, why: /applied 4 must lie between/ },
    {
      name: 'a bad vote',
      state: { ...good, hardState: { ...good.hardState, vote: '' } },
      why: /vote must be null or a node id/
    },
    {
      name: 'an undecodable configuration entry',
      state: {
        ...good,
        hardState: { ...good.hardState, commit: 1 },
        entries: [good.entries[0]!, makeEntry(good.entries[0]!.hash, 2, 1, 'confChange', enc('junk'))]
      },
      why: /log does not replay/
    }
  ]
  for (const tc of broken) {
    it(`restart: an inconsistent store is refused with a clear error: ${tc.name}`, () => {
      assert.throws(
        () => new Raft({ id: 'n1', rand: () => 0 }, tc.state),
        (err: unknown) => err instanceof InconsistentStoreError && tc.why.test(err.message)
      )
    })
  }
})

describe('raft config', () => {
  it('config: defaults are documented values', () => {
    const rand = (): number => 0
    const { id, rand: r, ...rest } = resolveConfig({ id: 'n1', rand })
    assert.equal(id, 'n1')
    assert.equal(r, rand)
    // The table "Configuration (defaults)" of docs/raft.md.
    const MiB = 1024 * 1024
    assert.deepEqual(rest, {
      electionTicks: 10,
      heartbeatTicks: 1,
      learnerHeartbeatTicks: 1,
      preVote: true,
      checkQuorum: true,
      verifyHashChain: true,
      maxMessageBytes: 1 * MiB,
      maxInflightMsgs: 256,
      maxInflightBytes: 32 * MiB,
      maxUncommittedBytes: 64 * MiB,
      maxEntryBytes: 1 * MiB,
      maxCommittedBytesPerReady: 16 * MiB,
      maxPendingReads: 4096,
      snapshotTimeoutTicks: 100,
      maxTermAdvance: 1_000_000,
      votes: null,
      faultyVoters: 0
    })
  })

  const bad: { name: string; patch: Record<string, unknown>; key: string }[] = [
    { name: 'heartbeat not below election', patch: { heartbeatTicks: 10, electionTicks: 10 }, key: 'heartbeatTicks' },
    { name: 'faulty voters without signed acknowledgements', patch: { faultyVoters: 1 }, key: 'faultyVoters' },
    { name: 'faulty voters not an integer', patch: { faultyVoters: 0.5 }, key: 'faultyVoters' },
    { name: 'zero election ticks', patch: { electionTicks: 0 }, key: 'electionTicks' },
    { name: 'fractional inflight', patch: { maxInflightMsgs: 1.5 }, key: 'maxInflightMsgs' },
    {
      name: 'inflight bytes below message bytes',
      patch: { maxInflightBytes: 10, maxMessageBytes: 100 },
      key: 'maxInflightBytes'
    },
    { name: 'empty id', patch: { id: '' }, key: 'id' },
    { name: 'missing rand', patch: { rand: undefined }, key: 'rand' },
    { name: 'non-boolean preVote', patch: { preVote: 'yes' }, key: 'preVote' }
  ]
  for (const tc of bad) {
    it(`config: rejects ${tc.name}, naming the key`, () => {
      assert.throws(
        () => resolveConfig({ id: 'n1', rand: () => 0, ...tc.patch } as never),
        (err: unknown) => err instanceof RaftConfigError && err.key === tc.key
      )
    })
  }
})

describe('raft Ready contract', () => {
  it('ready: ready() may not be called twice without advance()', () => {
    const r = new Raft({ id: 'n1', rand: () => 0 }, bootstrapState({ voters: ['n1'], learners: [] }))
    r.ready()
    assert.equal(r.hasReady(), false, 'nothing new while a Ready is outstanding')
    assert.throws(() => r.ready(), /before advance/)
  })

  it('ready: hardState appears only when term, vote or commit changed; softState only on role or leader changes', () => {
    const n = new TestNode('n1', bootstrapState({ voters: ['n1', 'n2', 'n3'], learners: [] }), {})
    n.handle()
    for (let i = 0; i < 3; i++) n.raft.tick()
    assert.equal(n.raft.hasReady(), false)
    for (let i = 0; i < 7; i++) n.raft.tick()
    const rd = n.raft.ready()
    assert.deepEqual(rd.softState, { role: 'preCandidate', leader: null })
    assert.equal(rd.hardState, null, 'a pre-vote persists nothing')
    n.raft.advance(rd)
  })

  it('ready: messages that depend on an unpersisted vote are in the Ready that persists it', () => {
    const n = new TestNode('n1', bootstrapState({ voters: ['n1', 'n2', 'n3'], learners: [] }), { preVote: false })
    n.handle()
    for (let i = 0; i < 10; i++) n.raft.tick()
    const rd = n.raft.ready()
    assert.deepEqual(rd.hardState, { term: 2, vote: 'n1', commit: 1 })
    assert.equal(msgsOfType(rd.messages, 'vote').length, 2)
    n.raft.advance(rd)
  })

  it('ready: status() is a read-only view with per-peer progress on the leader', () => {
    const c = new Cluster({ voters: 3, learners: 1 })
    const l = c.elect('n1')
    const s = l.status()
    assert.equal(s.role, 'leader')
    assert.equal(s.leader, 'n1')
    assert.deepEqual(s.configuration, { voters: ['n1', 'n2', 'n3'], learners: ['n4'] })
    assert.equal(s.progress!.n4!.isLearner, true)
    assert.equal(s.progress!.n2!.match, s.lastIndex)
    assert.equal(c.raft('n2').status().progress, null)
  })
})
