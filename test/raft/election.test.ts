// Terms (§5.1), leader election (§5.2), the election restriction (§5.4.1), pre-vote and check-quorum.

import assert from 'node:assert/strict'
import type { Raft, Message, VoteMessage } from '../../board/raft/index.js'
import { Cluster, msgsOfType, staggered, stateWithLog, TestNode } from './harness.js'

const three = { voters: ['n1', 'n2', 'n3'], learners: [] }

describe('raft §5.1 terms', () => {
  it('§5.1: a leader that sees a higher term steps down and adopts it', () => {
    const c = new Cluster({ voters: 3 })
    const leader = c.elect('n1')
    const term = leader.currentTerm
    leader.step({
      type: 'appResp',
      from: 'n2',
      to: 'n1',
      term: term + 3,
      index: 0,
      reject: true,
      hintIndex: 0,
      hintTerm: 0
    })
    assert.equal(leader.currentRole, 'follower')
    assert.equal(leader.currentTerm, term + 3)
    assert.equal(leader.status().vote, null, 'a new term starts without a vote')
  })

  it('§5.1: messages of a stale term are ignored; a stale leader is told the newer term', () => {
    const c = new Cluster({ voters: 3 })
    c.elect('n1')
    const f = c.node('n2')
    const term = f.raft.currentTerm
    f.raft.step({ type: 'heartbeat', from: 'n3', to: 'n2', term: term - 1, commit: 0, context: null })
    const out = f.handle()
    assert.equal(f.raft.leaderId, 'n1', 'the stale heartbeat did not change the leader')
    const resp = msgsOfType(out, 'appResp')
    assert.equal(resp.length, 1)
    assert.equal(resp[0]!.to, 'n3')
    assert.equal(resp[0]!.term, term)
  })

  it('§5.1: the term never decreases across restarts', () => {
    const c = new Cluster({ voters: 3 })
    c.elect('n1')
    c.campaign('n2')
    const n2 = c.node('n2')
    const term = n2.raft.currentTerm
    n2.restart()
    assert.equal(n2.raft.currentTerm, term)
  })
})

describe('raft §5.2 leader election', () => {
  it('§5.2: a follower that hears no leader for the election timeout runs pre-vote, then a real election, and wins', () => {
    const c = new Cluster({ voters: 3, config: { electionTicks: 10 } })
    const n1 = c.raft('n1')
    c.tick('n1', 9)
    assert.equal(n1.currentRole, 'follower')
    c.tick('n1', 1)
    assert.equal(n1.currentRole, 'preCandidate', 'pre-vote first')
    assert.equal(n1.currentTerm, 1, 'pre-vote does not bump the term')
    const pre = msgsOfType(c.node('n1').handle(), 'preVote')
    assert.deepEqual(
      pre.map((m) => [m.to, m.term]),
      [
        ['n2', 2],
        ['n3', 2]
      ]
    )
    for (const m of pre) c.deliver(m)
    c.stabilize()
    assert.equal(n1.currentRole, 'leader')
    assert.equal(n1.currentTerm, 2)
  })

  it('§5.2: the election timeout is randomized in [electionTicks, 2 * electionTicks)', () => {
    for (const [r, expected] of [
      [0, 10],
      [4, 14],
      [9, 19]
    ] as const) {
      const n = new TestNode('n1', stateWithLog(three, []), { electionTicks: 10, rand: () => r })
      let ticks = 0
      while (n.raft.currentRole === 'follower') {
        n.raft.tick()
        ticks++
      }
      assert.equal(ticks, expected, `rand=${r}`)
    }
  })

  it('§5.2: rand must return an integer in [0, n)', () => {
    assert.throws(() => new TestNode('n1', stateWithLog(three, []), { rand: () => 10 }), /rand\(10\) returned 10/)
  })

  it('§5.2: a node grants at most one vote per term, and persists it before answering', () => {
    const n = new TestNode('n2', stateWithLog(three, []), { preVote: false })
    const vote = (from: string): VoteMessage => ({
      type: 'vote',
      from,
      to: 'n2',
      term: 5,
      lastIndex: 1,
      lastTerm: 1,
      force: false
    })
    n.raft.step(vote('n1'))
    n.raft.step(vote('n3'))
    n.raft.step(vote('n1')) // a repeated request from the same candidate is granted again
    const rd = n.raft.ready()
    assert.deepEqual(rd.hardState, { term: 5, vote: 'n1', commit: 1 }, 'the vote is in the same Ready as the answers')
    assert.deepEqual(
      msgsOfType(rd.messages, 'voteResp').map((m) => [m.to, m.reject]),
      [
        ['n1', false],
        ['n3', true],
        ['n1', false]
      ]
    )
    n.raft.advance(rd)
  })

  it('§5.2: a vote survives a restart', () => {
    const n = new TestNode('n2', stateWithLog(three, []), { preVote: false })
    n.raft.step({ type: 'vote', from: 'n1', to: 'n2', term: 5, lastIndex: 1, lastTerm: 1, force: false })
    n.handle()
    n.restart()
    n.raft.step({ type: 'vote', from: 'n3', to: 'n2', term: 5, lastIndex: 1, lastTerm: 1, force: false })
    const resp = msgsOfType(n.handle(), 'voteResp')
    assert.equal(resp[0]!.reject, true)
  })

  it('§5.2: a candidate that hears from a leader of its term becomes its follower', () => {
    const n = new TestNode('n1', stateWithLog(three, []), { preVote: false })
    for (let i = 0; i < 10; i++) n.raft.tick()
    assert.equal(n.raft.currentRole, 'candidate')
    const term = n.raft.currentTerm
    n.raft.step({ type: 'heartbeat', from: 'n2', to: 'n1', term, commit: 1, context: null })
    assert.equal(n.raft.currentRole, 'follower')
    assert.equal(n.raft.leaderId, 'n2')
  })

  it('§5.2: a candidate that a majority rejects becomes a follower', () => {
    const n = new TestNode('n1', stateWithLog(three, []), { preVote: false })
    for (let i = 0; i < 10; i++) n.raft.tick()
    const term = n.raft.currentTerm
    n.raft.step({ type: 'voteResp', from: 'n2', to: 'n1', term, reject: true })
    assert.equal(n.raft.currentRole, 'candidate', 'one rejection of three is not a majority')
    n.raft.step({ type: 'voteResp', from: 'n3', to: 'n1', term, reject: true })
    assert.equal(n.raft.currentRole, 'follower')
  })

  it('§5.2: a new leader appends an empty entry of its term', () => {
    const c = new Cluster({ voters: 3 })
    const l = c.elect('n1')
    const e = l.entryAt(l.lastIndex)!
    assert.equal(e.term, l.currentTerm)
    assert.equal(e.data.length, 0)
    assert.equal(l.commitIndex, e.index, 'and commits it')
  })

  it('§5.2: a single-voter cluster elects itself at once', () => {
    const c = new Cluster({ voters: 1 })
    const l = c.elect('n1')
    assert.equal(l.currentRole, 'leader')
    const r = l.propose(new TextEncoder().encode('x'))
    assert.ok(l.commitIndex < r.index, 'not before the entry is durable on the leader itself')
    c.node('n1').handle()
    assert.equal(l.commitIndex, r.index)
  })

  it('§5.3: the leader counts its own copy only once durable (its appends may go out during its write)', () => {
    const c = new Cluster({ voters: 3 })
    const l = c.elect('n1')
    l.propose(new TextEncoder().encode('x'))
    const rd = l.ready() // not yet persisted
    for (const m of rd.messages) if (m.to === 'n2') c.deliver(m)
    for (const m of c.node('n2').handle()) c.deliver(m)
    assert.ok(l.commitIndex < l.lastIndex, 'one durable copy (n2) of three is not a quorum')
    c.node('n1').store.persist(rd)
    l.advance(rd)
    assert.equal(l.commitIndex, l.lastIndex, 'durable on n1 and n2')
  })
})

describe('raft §5.4.1 election restriction', () => {
  // Voter's log: founding entry, then entries of terms [1, 2, 2] (last index 4, last term 2).
  const cases: { name: string; lastIndex: number; lastTerm: number; grant: boolean }[] = [
    { name: 'higher last term, shorter log', lastIndex: 2, lastTerm: 3, grant: true },
    { name: 'same last term, longer log', lastIndex: 5, lastTerm: 2, grant: true },
    { name: 'same last term, same length', lastIndex: 4, lastTerm: 2, grant: true },
    { name: 'same last term, shorter log', lastIndex: 3, lastTerm: 2, grant: false },
    { name: 'lower last term, longer log', lastIndex: 9, lastTerm: 1, grant: false }
  ]
  for (const tc of cases) {
    for (const type of ['vote', 'preVote'] as const) {
      it(`§5.4.1: ${type} ${tc.grant ? 'granted' : 'denied'} to a candidate with ${tc.name}`, () => {
        const n = new TestNode('n2', stateWithLog(three, [1, 2, 2], { term: 2 }), {})
        n.raft.step({
          type,
          from: 'n1',
          to: 'n2',
          term: 3,
          lastIndex: tc.lastIndex,
          lastTerm: tc.lastTerm,
          force: false
        })
        const resp = n.handle().find((m) => m.type === (type === 'vote' ? 'voteResp' : 'preVoteResp')) as Message & {
          reject: boolean
        }
        assert.equal(resp.reject, !tc.grant)
      })
    }
  }
})

describe('raft pre-vote', () => {
  it('pre-vote: a node cut off from the cluster keeps its term, and rejoins without disrupting the leader', () => {
    const c = new Cluster({ voters: 3 })
    const leader = c.elect('n1')
    const term = leader.currentTerm
    c.isolate('n3')
    for (let i = 0; i < 100; i++) c.tickAll()
    const n3 = c.raft('n3')
    assert.equal(n3.currentTerm, term, 'pre-votes never succeed alone, so the term stays')
    c.heal()
    c.tickAll(5)
    assert.equal(leader.currentRole, 'leader')
    assert.equal(leader.currentTerm, term)
    assert.equal(n3.leaderId, 'n1')
  })

  it('pre-vote: a pre-vote does not change the voter term or vote', () => {
    const n = new TestNode('n2', stateWithLog(three, [], { term: 1 }), {})
    n.raft.step({ type: 'preVote', from: 'n1', to: 'n2', term: 2, lastIndex: 1, lastTerm: 1, force: false })
    const out = n.handle()
    assert.equal(n.raft.currentTerm, 1)
    assert.equal(n.raft.status().vote, null)
    const resp = msgsOfType(out, 'preVoteResp')[0]!
    assert.equal(resp.reject, false)
    assert.equal(resp.term, 2, 'a granted pre-vote echoes the requested term')
  })

  it('pre-vote: a pre-vote from a lower term is rejected with the voter term', () => {
    const n = new TestNode('n2', stateWithLog(three, [], { term: 7 }), {})
    n.raft.step({ type: 'preVote', from: 'n1', to: 'n2', term: 5, lastIndex: 9, lastTerm: 4, force: false })
    const resp = msgsOfType(n.handle(), 'preVoteResp')[0]!
    assert.equal(resp.reject, true)
    assert.equal(resp.term, 7)
  })
})

describe('raft check-quorum', () => {
  it('check-quorum: a leader that does not hear from a quorum within an election timeout steps down', () => {
    const c = new Cluster({ voters: 3, config: { electionTicks: 10 } })
    const leader = c.elect('n1')
    c.isolate('n1')
    c.tick('n1', 9)
    assert.equal(leader.currentRole, 'leader')
    c.tick('n1', 11)
    assert.equal(leader.currentRole, 'follower')
  })

  it('check-quorum: a follower that heard from its leader recently ignores vote requests (leader lease)', () => {
    const c = new Cluster({ voters: 3 })
    c.elect('n1')
    const n2 = c.raft('n2')
    const term = n2.currentTerm
    n2.step({ type: 'vote', from: 'n3', to: 'n2', term: term + 1, lastIndex: 99, lastTerm: term, force: false })
    assert.equal(n2.currentTerm, term, 'the term does not move')
    assert.equal(c.node('n2').handle().length, 0, 'and no answer')
  })

  it('check-quorum: a forced vote (leadership transfer) bypasses the lease', () => {
    const c = new Cluster({ voters: 3 })
    c.elect('n1')
    const n2 = c.raft('n2')
    const term = n2.currentTerm
    n2.step({ type: 'vote', from: 'n3', to: 'n2', term: term + 1, lastIndex: 99, lastTerm: term, force: true })
    assert.equal(n2.currentTerm, term + 1)
  })

  it('check-quorum: a follower forgets a leader it no longer hears, so others can win (PreVote+CheckQuorum liveness)', () => {
    const c = new Cluster({ voters: 3, config: { electionTicks: 10 }, rand: (id) => () => (id === 'n2' ? 5 : 0) })
    c.elect('n1')
    // n3 cannot hear n1, n2 still can: n2 must not block n3 forever once n1 is gone.
    c.cutLink('n1', 'n3')
    c.tickAll(3)
    // n1 dies.
    c.isolate('n1')
    const n2 = c.node('n2')
    for (let i = 0; i < 9; i++) n2.raft.tick()
    assert.equal(n2.raft.leaderId, 'n1')
    n2.raft.tick()
    assert.equal(n2.raft.leaderId, null, 'forgotten after an election timeout of silence')
    for (let i = 0; i < 40 && c.leader()?.id !== 'n2' && c.leader()?.id !== 'n3'; i++) c.tickAll()
    const l = c.leader()
    assert.ok(l !== null && l.id !== 'n1', 'n2 or n3 leads')
  })

  it('check-quorum: a node that rejoins with a higher term makes the stale leader step down', () => {
    // Without pre-vote a cut-off node bumps its term; when it rejoins, the leader learns the term
    // from its answer to a heartbeat and a new election follows.
    const c = new Cluster({ voters: 3, config: { preVote: false }, rand: staggered })
    const l = c.elect('n1')
    c.isolate('n3')
    for (let i = 0; i < 30; i++) c.tick('n3')
    c.stabilize()
    const high = c.raft('n3').currentTerm
    assert.ok(high > l.currentTerm)
    c.heal()
    c.tickAll(1)
    assert.ok(c.raft('n1').currentTerm >= high)
    c.tickAll(60)
    assert.ok(c.leader() !== null)
  })
})

describe('raft learners', () => {
  it('learners: a learner receives the log but never campaigns and does not count toward a quorum', () => {
    const c = new Cluster({ voters: 3, learners: 1 })
    const l = c.elect('n1')
    l.propose(new TextEncoder().encode('a'))
    c.stabilize()
    assert.deepEqual(c.node('n4').appliedData(), ['a'])
    // Lose two voters: the learner does not make a quorum.
    c.isolate('n2')
    c.isolate('n3')
    const r = l.propose(new TextEncoder().encode('b'))
    c.stabilize()
    assert.ok(l.commitIndex < r.index)
    const n4 = c.raft('n4')
    for (let i = 0; i < 100; i++) n4.tick()
    assert.equal(n4.currentRole, 'follower', 'a learner never campaigns')
    assert.equal(n4.status().progress, null)
  })

  it('learners: a learner answers vote requests (it may have been promoted in a log it has not seen yet)', () => {
    const learnerView = { voters: ['n1', 'n2', 'n3'], learners: ['n4'] }
    const n = new TestNode('n4', stateWithLog(learnerView, []), {})
    n.raft.step({ type: 'vote', from: 'n1', to: 'n4', term: 3, lastIndex: 5, lastTerm: 2, force: false })
    assert.equal(msgsOfType(n.handle(), 'voteResp')[0]!.reject, false)
  })
})

describe('raft node ids', () => {
  it('node ids are opaque strings (libp2p peer ids)', () => {
    const ids = ['12D3KooWAbc', '12D3KooWXyz', 'QmPeerWithUnicode-ü']
    const cfg = { voters: ids, learners: [] }
    const nodes = ids.map((id) => new TestNode(id, stateWithLog(cfg, []), {}))
    const raft: Raft = nodes[0]!.raft
    for (let i = 0; i < 10; i++) raft.tick()
    assert.deepEqual(
      msgsOfType(nodes[0]!.handle(), 'preVote').map((m) => m.to),
      ['12D3KooWXyz', 'QmPeerWithUnicode-ü']
    )
  })
})
