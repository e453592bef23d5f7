import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { AckClaim, NodeId, VoteAuthority } from '../../board/raft/index.js'

/** What a vote signs: this domain, the term (u64 big-endian) and the candidate's peer id. */
const VOTE_DOMAIN = new TextEncoder().encode('poolboard/raft-vote/1\0')
/** What an acknowledgement signs: this domain, term, index, locked (u64 big-endian each) and the hash. */
const ACK_DOMAIN = new TextEncoder().encode('poolboard/raft-ack/1\0')
const MAX_KEYS = 4_096

/**
 * Signs this node's Raft votes with its libp2p identity key (Ed25519) and checks other members'.
 * The board names members by peer id, and an Ed25519 peer id is its public key, so any node checks
 * any vote without a lookup, before the pool (which binds member keys to peer ids) even exists.
 */
export class PeerIdVotes implements VoteAuthority {
  private readonly secret: KeyObject
  private readonly publicKeys = new Map<NodeId, KeyObject | null>()

  /** `isMember`: only the pool's members' votes count (anyone can make a peer id). */
  constructor(
    privateKey: PrivateKey,
    private readonly isMember: (peerId: NodeId) => boolean
  ) {
    if (privateKey.type !== 'Ed25519') throw new Error(`board votes need an Ed25519 node key, not ${privateKey.type}`)
    const raw = privateKey.raw
    this.secret = createPrivateKey({
      key: { kty: 'OKP', crv: 'Ed25519', d: b64url(raw.subarray(0, 32)), x: b64url(raw.subarray(32, 64)) },
      format: 'jwk'
    })
  }

  sign(term: number, candidate: NodeId): Uint8Array {
    return new Uint8Array(sign(null, voteMessage(term, candidate), this.secret))
  }

  verify(voter: NodeId, term: number, candidate: NodeId, signature: Uint8Array): boolean {
    if (!this.isMember(voter)) return false
    const key = this.publicKey(voter)
    if (key === null || signature.length !== 64) return false
    return verify(null, voteMessage(term, candidate), key, signature)
  }

  signAck(ack: AckClaim): Uint8Array {
    return new Uint8Array(sign(null, ackMessage(ack), this.secret))
  }

  verifyAck(voter: NodeId, ack: AckClaim, signature: Uint8Array): boolean {
    if (!this.isMember(voter)) return false
    const key = this.publicKey(voter)
    if (key === null || signature.length !== 64) return false
    return verify(null, ackMessage(ack), key, signature)
  }

  private publicKey(peerId: NodeId): KeyObject | null {
    let key = this.publicKeys.get(peerId)
    if (key !== undefined) return key
    key = null
    try {
      const publicKey = peerIdFromString(peerId).publicKey
      if (publicKey?.type === 'Ed25519')
        key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64url(publicKey.raw) }, format: 'jwk' })
    } catch {
      /* not a peer id: no vote of it verifies */
    }
    if (this.publicKeys.size >= MAX_KEYS) this.publicKeys.clear()
    this.publicKeys.set(peerId, key)
    return key
  }
}

function voteMessage(term: number, candidate: NodeId): Uint8Array {
  const id = new TextEncoder().encode(candidate)
  const out = new Uint8Array(VOTE_DOMAIN.length + 8 + id.length)
  out.set(VOTE_DOMAIN, 0)
  new DataView(out.buffer).setBigUint64(VOTE_DOMAIN.length, BigInt(term))
  out.set(id, VOTE_DOMAIN.length + 8)
  return out
}

function ackMessage(ack: AckClaim): Uint8Array {
  const out = new Uint8Array(ACK_DOMAIN.length + 24 + ack.hash.length)
  out.set(ACK_DOMAIN, 0)
  const view = new DataView(out.buffer)
  view.setBigUint64(ACK_DOMAIN.length, BigInt(ack.term))
  view.setBigUint64(ACK_DOMAIN.length + 8, BigInt(ack.index))
  view.setBigUint64(ACK_DOMAIN.length + 16, BigInt(ack.locked))
  out.set(ack.hash, ACK_DOMAIN.length + 24)
  return out
}

function b64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64url')
}
