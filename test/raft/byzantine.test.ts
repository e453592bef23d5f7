// A lone lying member against the core (issue 11): terms and indexes it cannot push past the
// codec's limit, a term it cannot lead by saying so, and (with signed votes) a term it cannot take
// without the election certificate a quorum's votes make.

import assert from 'node:assert/strict'
import { generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto'
import {
  bootstrapState,
  MAX_TERM_OR_INDEX,
  type HeartbeatMessage,
  type Message,
  type NodeId,
  type VoteAuthority
} from '../../board/raft/index.js'
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
        }
      }
    ])
  )
}

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
})
