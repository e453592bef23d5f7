import assert from 'node:assert/strict'
import { DecodeError, EncodeError, Writer } from '../../protocol/codec.js'
import {
  buildPartitionStatement,
  encodeUpdateRequest,
  indexOfKey,
  initialState,
  makeEvidence,
  makePartitionRequest,
  makeSignatureShare,
  makeMergeRequest,
  makeUpdateRequest,
  signHash,
  signMergeRequest,
  signPartitionRequest,
  signStatement,
  signUpdateRequest,
  stateHash,
  statementId,
  verifyHash,
  withStatementSignature,
  type PartitionStatement
} from '../../protocol/index.js'
import { TopicValidatorResult, type GossipSub, type Message } from '@libp2p/gossipsub'
import {
  decodeGossip,
  encodeGossip,
  GOSSIP_KINDS,
  MAX_GOSSIP_MESSAGE_BYTES,
  PoolGossip,
  poolTopic,
  refusalSigningHash,
  signRefusal,
  type GossipMessage
} from '../../daemon/net/gossip.js'
import type { Logger } from '../../daemon/host/log.js'
import { decodeHello, encodeHello, helloHash } from '../../daemon/pool/members.js'
import { MEMBERS, testGenesis } from '../protocol/fixtures.js'

const A = MEMBERS[0]
const B = MEMBERS[1]
const C = MEMBERS[2]
const ROUND = new Uint8Array(32).fill(7)

function fixtures(): { messages: GossipMessage[]; conflicting: [PartitionStatement, PartitionStatement] } {
  const g = testGenesis(3, [1000n, 2000n, 3000n], { kickoutDelayBlocks: 5, creationHeight: 10 })
  const s0 = initialState(g)
  const update = signUpdateRequest(
    makeUpdateRequest(s0, {
      proposer: A.publicKey,
      payment: { payer: A.publicKey, payee: B.publicKey, amountSats: 10n },
      heightT: 10,
      deadlineMs: 1_000_000,
      roundId: ROUND
    }),
    A.secretKey
  )
  const bal = (k: Uint8Array): bigint => s0.balances[indexOfKey(s0.pool.members, k)]
  const actives = [A.publicKey, B.publicKey]
  const partition = signPartitionRequest(
    makePartitionRequest(s0, {
      proposer: A.publicKey,
      actives,
      newBalances: actives.map(bal),
      heightT: 10,
      deadlineMs: 1_000_000,
      roundId: ROUND
    }),
    A.secretKey
  )
  const sign = (stmt: PartitionStatement, by: Array<typeof A>): PartitionStatement =>
    by.reduce((s, m) => withStatementSignature(s, m.publicKey, signStatement(s, m.secretKey)), stmt)
  const first = sign(
    buildPartitionStatement(s0, [A.publicKey, B.publicKey], [bal(A.publicKey), bal(B.publicKey)], 10),
    [A, B]
  )
  const second = sign(
    buildPartitionStatement(s0, [A.publicKey, C.publicKey], [bal(A.publicKey), bal(C.publicKey)], 10),
    [A]
  )
  const share = makeSignatureShare(
    { kind: 'state', poolId: s0.pool.poolId, roundId: ROUND, subject: stateHash(s0), member: B.publicKey },
    B.secretKey
  )
  const refusal = signRefusal(
    {
      poolId: s0.pool.poolId,
      roundId: ROUND,
      member: C.publicKey,
      code: 'conflict',
      reason: 'statement 9f3a already spends my Withdraw output',
      conflict: { statementId: statementId(first), index: 14 }
    },
    C.secretKey
  )
  return {
    messages: [
      { kind: 'genesis-proposal', proposal: { roundId: ROUND, deadlineMs: 123_456, genesis: g } },
      { kind: 'update-request', request: update },
      { kind: 'share', share },
      { kind: 'partition-request', request: partition },
      { kind: 'refusal', refusal },
      { kind: 'evidence', evidence: makeEvidence(first, second, A.publicKey) },
      {
        kind: 'merge-request',
        request: signMergeRequest(
          makeMergeRequest(s0, {
            proposer: B.publicKey,
            folded: [...s0.balances].reverse(),
            heightT: 10,
            deadlineMs: 1_000_000,
            roundId: ROUND
          }),
          B.secretKey
        )
      }
    ],
    conflicting: [first, second]
  }
}

/** Asserts that decoding throws a DecodeError whose path names `field`. */
function rejects(bytes: Uint8Array, field: RegExp): void {
  assert.throws(
    () => decodeGossip(bytes),
    (err: unknown) => {
      assert.ok(err instanceof DecodeError, `expected a DecodeError, got ${String(err)}`)
      assert.match(err.message, /^gossip envelope/)
      assert.match(err.message, field)
      return true
    }
  )
}

describe('pool gossip envelope', () => {
  const { messages } = fixtures()

  it('every kind encodes and decodes back to the same message, byte for byte', () => {
    assert.deepEqual(
      messages.map((m) => m.kind),
      [...GOSSIP_KINDS]
    )
    for (const m of messages) {
      const bytes = encodeGossip(m)
      const back = decodeGossip(bytes)
      assert.deepEqual(back, m, `${m.kind} decodes to the message encoded`)
      assert.deepEqual(encodeGossip(back), bytes, `${m.kind} re-encodes identically`)
    }
  })

  it('a Buffer off the network decodes like a Uint8Array', () => {
    const bytes = encodeGossip(messages[1])
    assert.deepEqual(encodeGossip(decodeGossip(Buffer.from(bytes))), bytes)
  })

  it('rejects an empty message, naming the version', () => {
    rejects(new Uint8Array(0), /version/)
  })

  it('rejects an unknown version', () => {
    const bytes = encodeGossip(messages[2])
    bytes[0] = 2
    rejects(bytes, /version/)
  })

  it('rejects an unknown kind, naming the field and the known kinds', () => {
    const bytes = encodeGossip(messages[2])
    bytes[1] = 9
    rejects(bytes, /kind: unknown kind 9 .*genesis-proposal/)
    bytes[1] = 0
    rejects(bytes, /kind: unknown kind 0/)
  })

  it('rejects a payload shorter than its length says', () => {
    const bytes = encodeGossip(messages[2])
    rejects(bytes.subarray(0, bytes.length - 1), /payload/)
  })

  it('rejects trailing bytes after the payload', () => {
    const bytes = encodeGossip(messages[2])
    rejects(new Uint8Array([...bytes, 0]), /trailing bytes/)
  })

  it('rejects a payload that is not the kind it claims, naming the inner field', () => {
    // An update request sent as a share: the share decoder reads its fields and stops at the first bad one.
    const update = encodeUpdateRequest((messages[1] as Extract<GossipMessage, { kind: 'update-request' }>).request)
    const w = new Writer(update.length + 8)
      .u8(1)
      .u8(GOSSIP_KINDS.indexOf('share') + 1)
      .bytes(update, MAX_GOSSIP_MESSAGE_BYTES, 'payload')
    rejects(w.finish(), /payload: signature share/)
  })

  it('rejects a malformed update request inside the envelope with the path of the field', () => {
    const bytes = encodeGossip(messages[1])
    // version (1) | kind (1) | payload length varint (2 bytes: > 0xfc) | update request: version 1 | poolId 32 | ...
    const payloadStart = 2 + (bytes[2] === 0xfd ? 3 : 1)
    const corrupt = new Uint8Array(bytes)
    corrupt[payloadStart] = 9 // the update request's version byte
    rejects(corrupt, /payload: update request: version/)
  })

  it('rejects a refusal with an unknown conflict flag', () => {
    const bytes = encodeGossip(messages[4])
    // The flag sits right before the 32-byte id, 8-byte index and 64-byte signature.
    const corrupt = new Uint8Array(bytes)
    corrupt[corrupt.length - 64 - 8 - 32 - 1] = 5
    rejects(corrupt, /payload: refusal: conflict: expected 0 \(none\) or 1/)
  })

  it('rejects a genesis proposal whose genesis is malformed', () => {
    const bytes = encodeGossip(messages[0])
    const corrupt = new Uint8Array(bytes)
    const payloadStart = 2 + (bytes[2] === 0xfd ? 3 : 1)
    corrupt[payloadStart + 32 + 8] = 7 // the genesis version
    rejects(corrupt, /payload: genesis proposal: genesis: version/)
  })

  it('rejects evidence whose statements are swapped out of canonical order', () => {
    const { conflicting } = fixtures()
    const ev = makeEvidence(conflicting[0], conflicting[1], A.publicKey)
    const swapped: GossipMessage = {
      kind: 'evidence',
      evidence: {
        ...ev,
        first: ev.second,
        firstSignature: ev.secondSignature,
        second: ev.first,
        secondSignature: ev.firstSignature
      }
    }
    rejects(encodeGossip(swapped), /payload: equivocation evidence: second: statements not in canonical order/)
  })

  it('rejects input over the size limit before reading it', () => {
    rejects(new Uint8Array(MAX_GOSSIP_MESSAGE_BYTES + 1), /over the limit/)
  })

  it('refuses to encode an invalid message, naming the field', () => {
    const share = (messages[2] as Extract<GossipMessage, { kind: 'share' }>).share
    assert.throws(
      () => encodeGossip({ kind: 'share', share: { ...share, subject: new Uint8Array(31) } }),
      (err: unknown) => err instanceof EncodeError && /gossip envelope\.payload\..*subject/.test(err.message)
    )
  })

  it('a refusal is signed by the refusing member; any change breaks the signature', () => {
    const refusal = (messages[4] as Extract<GossipMessage, { kind: 'refusal' }>).refusal
    assert.ok(verifyHash(refusal.signature, refusalSigningHash(refusal), C.publicKey))
    assert.ok(!verifyHash(refusal.signature, refusalSigningHash({ ...refusal, reason: 'something else' }), C.publicKey))
    assert.ok(!verifyHash(refusal.signature, refusalSigningHash({ ...refusal, conflict: null }), C.publicKey))
    assert.ok(!verifyHash(refusal.signature, refusalSigningHash(refusal), B.publicKey))
  })

  it('a long refusal reason is cut to the limit, still signed and decodable', () => {
    const refusal = signRefusal(
      {
        poolId: new Uint8Array(32),
        roundId: ROUND,
        member: C.publicKey,
        code: 'rule',
        reason: 'é'.repeat(2_000),
        conflict: null
      },
      C.secretKey
    )
    const back = decodeGossip(encodeGossip({ kind: 'refusal', refusal }))
    assert.equal(back.kind, 'refusal')
    if (back.kind !== 'refusal') return
    assert.ok(Buffer.byteLength(back.refusal.reason) <= 1_000)
    assert.ok(verifyHash(back.refusal.signature, refusalSigningHash(back.refusal), C.publicKey))
  })
})

describe('hello answers and the pool topic', () => {
  it('a hello answer binds a member key to the peer id it signs', () => {
    const sig = signHash(helloHash(A.peerId), A.secretKey)
    const back = decodeHello(encodeHello(A.publicKey, sig))
    assert.ok(verifyHash(back.signature, helloHash(A.peerId), back.memberKey))
    assert.ok(
      !verifyHash(back.signature, helloHash(B.peerId), back.memberKey),
      'the answer cannot be replayed for another peer id'
    )
  })

  it('rejects a malformed hello answer, naming the field', () => {
    assert.throws(() => decodeHello(new Uint8Array([1, 2, 3])), /hello: memberKey: expected 32 bytes/)
    assert.throws(() => decodeHello(new Uint8Array(97)), /hello: version/)
  })

  it('the topic is the same whatever the order of the member list', () => {
    const ids = MEMBERS.slice(0, 5).map((m) => m.peerId)
    assert.equal(poolTopic(ids), poolTopic([...ids].reverse()))
    assert.notEqual(poolTopic(ids), poolTopic(ids.slice(1)))
    assert.match(poolTopic(ids), /^\/poolboard\/pool\/1\/[0-9a-f]{32}$/)
  })
})

describe('the pool gossip transport', () => {
  const MEMBER = MEMBERS[0].peerId
  const STRANGER = MEMBERS[9].peerId

  /** Just enough of gossipsub: the topic validator and the message event. */
  function harness(): {
    gossip: PoolGossip
    deliver: (from: string, data: Uint8Array) => string
    delivered: GossipMessage[]
    warnings: unknown[]
  } {
    const validators = new Map<string, (peer: unknown, msg: Message) => TopicValidatorResult>()
    const listeners: Array<(e: CustomEvent<Message>) => void> = []
    const pubsub = {
      topicValidators: validators,
      addEventListener: (_: string, l: (e: CustomEvent<Message>) => void) => {
        listeners.push(l)
      },
      removeEventListener: () => {},
      subscribe: () => {},
      unsubscribe: () => {},
      getSubscribers: () => [],
      publish: async () => ({ recipients: [] })
    }
    const warnings: unknown[] = []
    const logger = {
      warn: (o: unknown) => {
        warnings.push(o)
      },
      debug: () => {},
      info: () => {}
    }
    const delivered: GossipMessage[] = []
    const gossip = new PoolGossip({
      pubsub: pubsub as unknown as GossipSub,
      topic: 't',
      isMember: (p) => p === MEMBER,
      logger: logger as unknown as Logger,
      onMessage: (m) => {
        delivered.push(m)
      },
      dropLogIntervalMs: 60_000
    })
    gossip.start()
    const deliver = (from: string, data: Uint8Array): string => {
      const msg = {
        type: 'signed',
        from: { toString: () => from },
        topic: 't',
        data,
        sequenceNumber: 1n,
        signature: new Uint8Array(64),
        key: undefined
      } as unknown as Message
      const verdict = validators.get('t')!(undefined, msg)
      if (verdict === TopicValidatorResult.Accept)
        for (const l of listeners) l(new CustomEvent('message', { detail: msg }))
      return verdict
    }
    return { gossip, deliver, delivered, warnings }
  }

  it('delivers a well-formed message from a member', () => {
    const { deliver, delivered, gossip } = harness()
    const { messages } = fixtures()
    assert.equal(deliver(MEMBER, encodeGossip(messages[2])), TopicValidatorResult.Accept)
    assert.equal(delivered.length, 1)
    assert.equal(delivered[0].kind, 'share')
    assert.equal(gossip.stats().delivered, 1)
  })

  it('rejects malformed messages and strangers, counts them, and logs each reason at most once per interval', () => {
    const { deliver, delivered, gossip, warnings } = harness()
    const { messages } = fixtures()
    for (let i = 0; i < 5; i++) assert.equal(deliver(MEMBER, new Uint8Array([1, 42, 0])), TopicValidatorResult.Reject)
    assert.equal(deliver(STRANGER, encodeGossip(messages[2])), TopicValidatorResult.Reject)
    gossip.drop('forged', MEMBER, 'a share whose signature does not verify')
    assert.equal(delivered.length, 0)
    assert.deepEqual(gossip.stats().dropped, { malformed: 5, 'not-member': 1, forged: 1 })
    assert.equal(warnings.length, 3, 'one line per reason')
    assert.match(JSON.stringify(warnings[0]), /kind: unknown kind 42/)
  })
})
