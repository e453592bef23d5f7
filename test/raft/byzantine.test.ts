// A lone lying member against the core (issue 11): terms and indexes it cannot push past the
// codec's limit, a term it cannot lead by saying so, and (with signed votes) a term it cannot take
// without the election certificate a quorum's votes make.

import assert from 'node:assert/strict'
import { generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto'
import {
  bootstrapState,
  joiningState,
  makeEntry,
  MAX_TERM_OR_INDEX,
  type AckClaim,
  type AppMessage,
  type Entry,
  type HeartbeatMessage,
  type Message,
  type NodeId,
  type PersistedState,
  type VoteAuthority
} from '../../board/raft/index.js'
import { decodeMessage, encodeMessage } from '../../board/wire.js'
import { Cluster, msgsOfType, TestNode } from './harness.js'

/** Real Ed25519 signatures, keys by node name (the daemon uses peer ids: daemon/replica/votes.ts). */
function authorities(ids: readonly NodeId[]): Map<NodeId, VoteAuthority> {
  const keys = new Map<NodeId, { publicKey: KeyObject; privateKey: KeyObject }>(
    ids.map((id) => [id, generateKeyPairSync('ed25519')])
  )
  const message = (term: number, candidate: NodeId): Buffer => Buffer.from(`vote ${term} ${candidate}`)
  return new Map(
    ids.map((id) => [
      id,
      {
        sign: (term, candidate) => new Uint8Array(sign(null, message(term, candidate), keys.get(id)!.privateKey)),
        verify: (voter, term, candidate, signature) => {
          const k = keys.get(voter)
          return k !== undefined && verify(null, message(term, candidate), k.publicKey, signature)
        },
        signAck: (ack) => new Uint8Array(sign(null, ackMessage(ack), keys.get(id)!.privateKey)),
        verifyAck: (voter, ack, signature) => {
          const k = keys.get(voter)
          return k !== undefined && verify(null, ackMessage(ack), k.publicKey, signature)
        }
      }
    ])
  )
}

const ackMessage = (a: AckClaim): Buffer =>
  Buffer.from(`ack ${a.term} ${a.index} ${a.locked} ${Buffer.from(a.hash).toString('hex')}`)

function signedCluster(): { cluster: Cluster; votes: Map<NodeId, VoteAuthority> } {
  const ids = ['n1', 'n2', 'n3']
  const votes = authorities(ids)
  const cluster = new Cluster({ voters: 3 })
  const state = bootstrapState({ voters: ids, learners: [] })
  for (const id of ids) cluster.nodes.set(id, new TestNode(id, state, { votes: votes.get(id)! }))
  return { cluster, votes }
}

const heartbeat = (from: NodeId, to: NodeId, term: number, extra: Partial<HeartbeatMessage> = {}): Message =>
  ({ type: 'heartbeat', from, to, term, commit: 0, context: null, ...extra }) as Message

describe('raft against a lying member', () => {
  it('a heartbeat at the largest term the wire carries is refused and raised against its sender (it used to stop the board for good)', () => {
    const c = new Cluster({ voters: 3 })
    c.elect('n1')
    const term = c.raft('n2').currentTerm
    c.raft('n2').step(heartbeat('n3', 'n2', MAX_TERM_OR_INDEX))
    c.stabilize()
    assert.equal(c.raft('n2').currentTerm, term)
    assert.equal(c.raft('n2').leaderId, 'n1')
    const alarm = c.node('n2').alarms.at(-1)
    assert.equal(alarm?.kind, 'refused-message')
    assert.equal(alarm?.from, 'n3')
    // The board keeps committing.
    c.raft('n1').propose(new TextEncoder().encode('x'))
    c.stabilize()
    assert.deepEqual(c.node('n2').appliedData(), ['x'])
  })

  it('a term far above ours is refused (maxTermAdvance); one a few elections ahead is taken', () => {
    const c = new Cluster({ voters: 3, config: { maxTermAdvance: 100 } })
    c.elect('n1')
    const term = c.raft('n2').currentTerm
    c.raft('n2').step(heartbeat('n3', 'n2', term + 101))
    c.stabilize()
    assert.equal(c.raft('n2').currentTerm, term)
    assert.equal(c.node('n2').alarms.at(-1)?.kind, 'refused-message')
    c.raft('n2').step({ type: 'vote', from: 'n3', to: 'n2', term: term + 100, lastIndex: 0, lastTerm: 0, force: true })
    assert.equal(c.raft('n2').currentTerm, term + 100, 'plain Raft still takes a plausible term')
  })

  it('appends at the current term from a member that is not its leader are refused', () => {
    const c = new Cluster({ voters: 3 })
    c.elect('n1')
    const r2 = c.raft('n2')
    const term = r2.currentTerm
    const last = r2.lastIndex
    // Even after n2 forgets a leader it no longer hears from, it remembers who leads the term.
    c.tick('n2', 10)
    c.raft('n2').step({
      type: 'app',
      from: 'n3',
      to: 'n2',
      term,
      prevIndex: last,
      prevTerm: r2.termAt(last)!,
      prevHash: r2.hashAt(last)!,
      entries: [],
      commit: 0
    })
    c.node('n2').handle()
    assert.equal(r2.currentTerm, term)
    assert.notEqual(r2.leaderId, 'n3')
    assert.deepEqual(
      c.node('n2').alarms.map((a) => a.kind),
      ['refused-message']
    )
    // Indexes at the wire's limit are refused too, before any arithmetic on them.
    r2.step({
      type: 'app',
      from: 'n1',
      to: 'n2',
      term,
      prevIndex: MAX_TERM_OR_INDEX,
      prevTerm: term,
      prevHash: new Uint8Array(32),
      entries: [],
      commit: MAX_TERM_OR_INDEX
    })
    c.node('n2').handle()
    assert.equal(c.node('n2').alarms.at(-1)?.kind, 'refused-message')
  })

  describe('with signed votes', () => {
    it('a leader proves its term with a quorum of signed votes, and followers follow it', () => {
      const { cluster: c } = signedCluster()
      c.elect('n1')
      const hb = msgsOfType(c.delivered, 'heartbeat').at(-1) ?? msgsOfType(c.delivered, 'app').at(-1)
      assert.ok(hb?.certificate !== undefined)
      assert.equal(hb.certificate.leader, 'n1')
      assert.ok(hb.certificate.votes.length >= 2)
      for (const id of ['n2', 'n3']) assert.equal(c.raft(id).leaderId, 'n1')
      assert.deepEqual(
        [...c.nodes.values()].flatMap((n) => n.alarms),
        []
      )
    })

    it('a member claiming a higher term without a valid certificate is refused; a real election still moves the term', () => {
      const { cluster: c, votes } = signedCluster()
      c.elect('n1')
      const term = c.raft('n2').currentTerm
      const forged = [
        heartbeat('n3', 'n2', term + 1),
        heartbeat('n3', 'n2', term + 1, {
          certificate: {
            term: term + 1,
            leader: 'n3',
            voters: ['n1', 'n2', 'n3'],
            votes: [{ voter: 'n3', signature: votes.get('n3')!.sign(term + 1, 'n3') }]
          }
        }),
        heartbeat('n3', 'n2', term + 1, {
          certificate: {
            term: term + 1,
            leader: 'n3',
            voters: ['n1', 'n2', 'n3'],
            votes: [
              { voter: 'n3', signature: votes.get('n3')!.sign(term + 1, 'n3') },
              { voter: 'n1', signature: new Uint8Array(64) }
            ]
          }
        }),
        heartbeat('n3', 'n2', term + 1, {
          certificate: {
            term: term + 1,
            leader: 'n3',
            voters: ['n1', 'n2', 'n3'],
            votes: [
              { voter: 'n3', signature: votes.get('n3')!.sign(term + 1, 'n3') },
              { voter: 'n3', signature: votes.get('n3')!.sign(term + 1, 'n3') }
            ]
          }
        }),
        // A lone member elected by itself: its voters do not include a quorum of n2's.
        heartbeat('n3', 'n2', term + 1, {
          certificate: {
            term: term + 1,
            leader: 'n3',
            voters: ['n3'],
            votes: [{ voter: 'n3', signature: votes.get('n3')!.sign(term + 1, 'n3') }]
          }
        })
      ]
      for (const m of forged) c.raft('n2').step(m)
      c.node('n2').handle()
      assert.equal(c.raft('n2').currentTerm, term)
      assert.equal(c.raft('n2').leaderId, 'n1')
      assert.deepEqual(
        c.node('n2').alarms.map((a) => a.kind),
        forged.map(() => 'refused-message')
      )
      // A leadership transfer is a real election: n2 wins term + 1 with signed votes, n3 follows.
      c.raft('n1').transferLeadership('n2')
      c.stabilize()
      assert.equal(c.raft('n2').currentRole, 'leader')
      assert.equal(c.raft('n3').currentTerm, term + 1)
      assert.equal(c.raft('n3').leaderId, 'n2')
    })

    it('a granted vote without a valid signature does not count toward winning', () => {
      const { cluster: c } = signedCluster()
      c.filter = (m) => !(m.type === 'voteResp' && m.from === 'n3')
      // n2's vote reaches n1 stripped of its signature: n1 cannot prove n2's vote, so it cannot win with it.
      const deliver = c.deliver.bind(c)
      c.deliver = (m) => {
        deliver(m.type === 'voteResp' && m.from === 'n2' ? ({ ...m, signature: undefined } as Message) : m)
      }
      c.campaign('n1')
      assert.notEqual(c.raft('n1').currentRole, 'leader')
      assert.ok(c.node('n1').alarms.some((a) => a.kind === 'refused-message' && a.from === 'n2'))
    })
  })

  // docs/raft.md, "A member that lies": with f lying voters, quorums of floor((n + f) / 2) + 1,
  // signed acknowledgements, and a commit certificate that followers check. Each test is a bug the
  // whole-node simulator found with one liar among five members.
  describe('with lying voters (faultyVoters 1 of 5)', () => {
    const ids = ['n1', 'n2', 'n3', 'n4', 'n5']
    const enc = (s: string): Uint8Array => new TextEncoder().encode(s)

    function certifiedCluster(states?: Map<NodeId, PersistedState>): Cluster {
      const votes = authorities([...ids, 'n6'])
      const c = new Cluster({ voters: 5 })
      const boot = bootstrapState({ voters: ids, learners: [] })
      for (const id of ids)
        c.nodes.set(id, new TestNode(id, states?.get(id) ?? boot, { votes: votes.get(id)!, faultyVoters: 1 }))
      return c
    }

    /** A log after the founding entry: entries of `term` with these payloads, the first `commit` committed. */
    function logOf(term: number, payloads: string[], commit: number): PersistedState {
      const boot = bootstrapState({ voters: ids, learners: [] })
      const entries: Entry[] = [...boot.entries]
      for (const p of payloads)
        entries.push(makeEntry(entries.at(-1)!.hash, entries.length + 1, term, 'normal', enc(p)))
      return { hardState: { term, vote: null, commit }, snapshot: boot.snapshot, entries }
    }

    it('a follower takes no commit index on the leader’s word: only a quorum of signed acknowledgements commits (liars made honest nodes apply what no honest majority stored)', () => {
      const c = certifiedCluster()
      c.elect('n1')
      const n2 = c.raft('n2')
      const before = n2.commitIndex
      // The leader (or whoever n2 takes for it) says: this entry is committed.
      const last = n2.lastIndex
      const e = makeEntry(n2.hashAt(last)!, last + 1, n2.currentTerm, 'normal', enc('lie'))
      const app: AppMessage = {
        type: 'app',
        from: 'n1',
        to: 'n2',
        term: n2.currentTerm,
        prevIndex: last,
        prevTerm: n2.termAt(last)!,
        prevHash: n2.hashAt(last)!,
        entries: [e],
        commit: last + 1
      }
      n2.step(app)
      c.node('n2').handle()
      assert.equal(n2.commitIndex, before, 'committed on the leader’s word')
      assert.deepEqual(c.node('n2').appliedData(), [])
    })

    it('a quorum is 4 of 5: three acknowledgements commit nothing, and an unsigned one does not count (a liar’s acknowledgement of entries it lacks)', () => {
      const c = certifiedCluster()
      c.elect('n1')
      c.isolate('n4')
      // n5 acknowledges without a signature (what a forged appResp carries).
      c.filter = (m) => !(m.type === 'appResp' && m.from === 'n5') || m.reject
      const deliver = c.deliver.bind(c)
      c.deliver = (m) => {
        if (m.type === 'appResp' && m.from === 'n5') deliver({ ...m, ack: undefined } as Message)
        else deliver(m)
      }
      const commit = c.raft('n1').commitIndex
      c.raft('n1').propose(enc('x'))
      c.stabilize()
      assert.equal(c.raft('n1').commitIndex, commit)
      assert.deepEqual(c.node('n2').appliedData(), [])
      c.deliver = deliver
      c.heal()
      c.tickAll(3)
      for (const id of ids) assert.deepEqual(c.node(id).appliedData(), ['x'], id)
      assert.deepEqual(
        [...c.nodes.values()].flatMap((n) => n.alarms),
        []
      )
    })

    it('an entry is applied only once a quorum holds it committed: the leader alone knowing it is not enough', () => {
      const c = certifiedCluster()
      c.elect('n1')
      // Followers' acknowledgements reach n1, nothing n1 sends after them reaches anyone.
      c.raft('n1').propose(enc('x'))
      for (const m of c.node('n1').handle()) c.deliver(m)
      for (const id of ids.slice(1)) for (const m of c.node(id).handle()) c.deliver(m)
      c.node('n1').handle()
      assert.ok(c.raft('n1').commitIndex >= 3, 'n1 sees a quorum of acknowledgements')
      assert.deepEqual(c.node('n1').appliedData(), [], 'applied before a quorum held it committed')
      c.stabilize()
      c.tickAll(2)
      for (const id of ids) assert.deepEqual(c.node(id).appliedData(), ['x'], id)
    })

    it('a leader that rewrites an entry it gave this follower in its term is refused as equivocation', () => {
      const c = certifiedCluster()
      c.elect('n1')
      c.stabilize()
      c.raft('n1').propose(enc('x'))
      // n2 takes "x" from the leader and acknowledges it; it is not committed yet.
      for (const m of c.node('n1').handle()) if (m.to === 'n2') c.deliver(m)
      c.node('n2').handle()
      const n2 = c.raft('n2')
      const x = n2.lastIndex
      const other = makeEntry(n2.hashAt(x - 1)!, x, n2.termAt(x)!, 'normal', enc('y'))
      n2.step({
        type: 'app',
        from: 'n1',
        to: 'n2',
        term: n2.currentTerm,
        prevIndex: x - 1,
        prevTerm: n2.termAt(x - 1)!,
        prevHash: n2.hashAt(x - 1)!,
        entries: [other],
        commit: 0
      })
      c.node('n2').handle()
      const alarm = c.node('n2').alarms.at(-1)
      assert.equal(alarm?.kind, 'invalid-append')
      assert.equal(alarm?.from, 'n1')
      assert.match(alarm?.kind === 'invalid-append' ? alarm.reason : '', /equivocation/)
      assert.equal(new TextDecoder().decode(n2.entryAt(x)!.data), 'x')
    })

    it('a candidate whose log lacks a voter’s committed entry (same index and term, another hash) does not count its grant (a lying leader’s two entries at one index)', () => {
      // n3..n5 hold "x" at 2 committed; n2 holds the liar's "y" at 2, same term 2.
      const states = new Map<NodeId, PersistedState>([
        ['n2', logOf(2, ['y'], 1)],
        ['n3', logOf(2, ['x'], 2)],
        ['n4', logOf(2, ['x'], 2)],
        ['n5', logOf(2, ['x'], 2)],
        ['n1', logOf(2, ['x'], 1)]
      ])
      const c = certifiedCluster(states)
      c.campaign('n2')
      assert.notEqual(c.raft('n2').currentRole, 'leader', 'n2 led without the committed entry')
      c.campaign('n3')
      assert.equal(c.raft('n3').currentRole, 'leader')
      c.stabilize()
      c.tickAll(2)
      assert.equal(new TextDecoder().decode(c.raft('n2').entryAt(2)!.data), 'x')
    })

    it('a voter whose longer log conflicts with the candidate’s commit grants (a lying leader’s chain must not block every honest candidate)', () => {
      // n2 holds the liar's longer chain y, y2 (term 2) over uncommitted 2; n3 commits x at 2.
      const states = new Map<NodeId, PersistedState>([
        ['n2', logOf(2, ['y', 'y2'], 1)],
        ['n3', logOf(2, ['x'], 2)],
        ['n4', logOf(2, ['x'], 2)],
        ['n5', logOf(2, ['x'], 2)],
        ['n1', logOf(2, ['x'], 2)]
      ])
      const c = certifiedCluster(states)
      // Without n2 there is no quorum of 4 (n1 is down).
      c.isolate('n1')
      c.campaign('n3')
      assert.equal(c.raft('n3').currentRole, 'leader')
      c.heal()
      c.tickAll(2)
      assert.equal(new TextDecoder().decode(c.raft('n2').entryAt(2)!.data), 'x')
    })

    it('a joiner takes its first term only from a proven leader message (a liar’s huge term spread through a joiner’s answers)', () => {
      const votes = authorities(['n6'])
      const joiner = new TestNode('n6', joiningState(), {
        votes: {
          ...votes.get('n6')!,
          verifyAck: () => true
        },
        faultyVoters: 1
      })
      joiner.raft.step({ type: 'vote', from: 'n5', to: 'n6', term: 2 ** 40, lastIndex: 0, lastTerm: 0, force: true })
      joiner.handle()
      assert.equal(joiner.raft.currentTerm, 0)
    })

    it('the wire carries acknowledgements, commit certificates and a candidate’s commit, and refuses every truncation of them', () => {
      const hash = new Uint8Array(32).fill(7)
      const signature = new Uint8Array(64).fill(9)
      const messages: Message[] = [
        {
          type: 'appResp',
          from: 'a',
          to: 'b',
          term: 3,
          index: 9,
          reject: false,
          hintIndex: 0,
          hintTerm: 0,
          ack: { hash, locked: 8, signature }
        },
        {
          type: 'voteResp',
          from: 'a',
          to: 'b',
          term: 3,
          reject: false,
          signature,
          ack: { hash, locked: 8, signature }
        },
        {
          type: 'vote',
          from: 'a',
          to: 'b',
          term: 3,
          lastIndex: 9,
          lastTerm: 2,
          force: false,
          commit: { index: 8, hash }
        },
        {
          type: 'heartbeat',
          from: 'a',
          to: 'b',
          term: 3,
          commit: 2,
          context: null,
          commitCertificate: { acks: [{ voter: 'c', term: 3, index: 9, hash, locked: 8, signature }] }
        }
      ]
      for (const m of messages) {
        const bytes = encodeMessage(m)
        assert.deepEqual(decodeMessage(bytes), m)
        for (let len = 0; len < bytes.length; len++) assert.throws(() => decodeMessage(bytes.subarray(0, len)))
      }
    })
  })
})
