import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { PeerIdVotes } from '../../daemon/replica/votes.js'

// Rule (docs/raft.md, "A member that lies" and "Lying voters"): votes and acknowledgements are
// signed with the member's libp2p Ed25519 key and checked against its peer id; only members count.
describe('daemon: signed votes and acknowledgements (PeerIdVotes)', () => {
  it('checks a vote and an acknowledgement against the signer’s peer id, and nothing altered or from a stranger', async () => {
    const keyA = await generateKeyPair('Ed25519')
    const keyB = await generateKeyPair('Ed25519')
    const a = peerIdFromPrivateKey(keyA).toString()
    const b = peerIdFromPrivateKey(keyB).toString()
    const members = new Set([a, b])
    const votesA = new PeerIdVotes(keyA, (id) => members.has(id))
    const votesB = new PeerIdVotes(keyB, (id) => members.has(id))

    const vote = votesA.sign(7, b)
    assert.equal(votesB.verify(a, 7, b, vote), true)
    assert.equal(votesB.verify(a, 8, b, vote), false, 'another term')
    assert.equal(votesB.verify(b, 7, b, vote), false, 'another signer')

    const claim = { term: 7, index: 42, hash: new Uint8Array(32).fill(3), locked: 40 }
    const ack = votesA.signAck(claim)
    assert.equal(votesB.verifyAck(a, claim, ack), true)
    assert.equal(votesB.verifyAck(a, { ...claim, index: 43 }, ack), false, 'another index')
    assert.equal(votesB.verifyAck(a, { ...claim, locked: 41 }, ack), false, 'another commit index')
    assert.equal(votesB.verifyAck(a, { ...claim, hash: new Uint8Array(32).fill(4) }, ack), false, 'another hash')
    assert.equal(votesB.verifyAck(a, claim, vote), false, 'a vote is not an acknowledgement')

    members.delete(a)
    assert.equal(votesB.verifyAck(a, claim, ack), false, 'no longer a member')
  })
})
