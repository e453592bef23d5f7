import '../../daemon/host/polyfill.js'
import assert from 'node:assert/strict'
import { randomFillSync } from 'node:crypto'
import type { Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream, streamPair } from '@libp2p/utils'
import pino from 'pino'
import type { Message, MessageType, SnapMessage } from '../../board/raft/types.js'
import { decodeMessage, encodeMessage } from '../../board/wire.js'
import { Writer } from '../../protocol/codec.js'
import {
  RAFT_PROTOCOL,
  RaftTransport,
  SNAPSHOT_PROTOCOL,
  type TransportLibp2p
} from '../../daemon/replica/transport/index.js'
import { introduce, newKey, startNode, until, type NodeOptions, type TestNode } from './nodes.js'

const h32 = (b: number): Uint8Array => new Uint8Array(32).fill(b)

/** A message of each non-snapshot type; `term` carries a sequence number so that order can be checked. */
function sample(type: Exclude<MessageType, 'snap'>, term: number, from: string, to: string): Message {
  const base = { from, to, term }
  switch (type) {
    case 'app':
      return {
        type,
        ...base,
        prevIndex: term,
        prevTerm: 1,
        prevHash: h32(1),
        commit: 3,
        entries: [{ index: term + 1, term: 1, type: 'normal', data: new Uint8Array([term & 0xff, 2, 3]), hash: h32(2) }]
      }
    case 'appResp':
      return { type, ...base, index: 7, reject: term % 2 === 0, hintIndex: 5, hintTerm: 1 }
    case 'vote':
    case 'preVote':
      return { type, ...base, lastIndex: 9, lastTerm: 2, force: false }
    case 'voteResp':
    case 'preVoteResp':
      return { type, ...base, reject: true }
    case 'heartbeat':
      return { type, ...base, commit: 4, context: term % 2 === 0 ? null : new Uint8Array([1]) }
    case 'heartbeatResp':
      return { type, ...base, context: null }
    case 'timeoutNow':
      return { type, ...base }
    case 'readIndex':
      return { type, ...base, context: new Uint8Array([9, 9]) }
    case 'readIndexResp':
      return { type, ...base, index: 12, context: new Uint8Array([9, 9]) }
    case 'transferLeader':
      return { type, ...base, target: to }
  }
}

const TYPES: Array<Exclude<MessageType, 'snap'>> = [
  'app',
  'appResp',
  'vote',
  'preVote',
  'voteResp',
  'preVoteResp',
  'heartbeat',
  'heartbeatResp',
  'timeoutNow',
  'readIndex',
  'readIndexResp',
  'transferLeader'
]

function heartbeat(seq: number, from: string, to: string): Message {
  return { type: 'heartbeat', from, to, term: 1, commit: seq, context: null }
}

function snap(from: string, to: string, dataBytes: number): SnapMessage {
  const data = new Uint8Array(dataBytes)
  randomFillSync(data)
  return {
    type: 'snap',
    from,
    to,
    term: 2,
    snapshot: {
      meta: { index: 1000, term: 2, hash: h32(7), configuration: { voters: [from, to], learners: [] } },
      data
    }
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
}

describe('raft transport over real libp2p nodes (loopback TCP)', function () {
  this.timeout(60_000)
  const running: TestNode[] = []
  const rawStreams: Stream[] = []

  async function node(options: NodeOptions): Promise<TestNode> {
    const n = await startNode(options)
    running.push(n)
    return n
  }

  /** Two members that know each other's address. */
  async function pair(options: Partial<NodeOptions> = {}): Promise<{ a: TestNode; b: TestNode }> {
    const ka = await newKey()
    const kb = await newKey()
    const allowed = new Set([ka.id, kb.id])
    const a = await node({ ...options, key: ka.key, allowed })
    const b = await node({ ...options, key: kb.key, allowed })
    await introduce(a, b)
    await introduce(b, a)
    return { a, b }
  }

  /** A raw stream from `from` to `to`, bypassing `from`'s transport, to send arbitrary frames. */
  async function rawStream(from: TestNode, to: TestNode, protocol: string): Promise<Stream> {
    const stream = await from.libp2p.dialProtocol(peerIdFromString(to.id), protocol)
    rawStreams.push(stream)
    return stream
  }

  afterEach(async () => {
    for (const s of rawStreams.splice(0)) s.abort(new Error('test over'))
    await Promise.all(
      running.splice(0).map(async (n) => {
        await n.stop()
      })
    )
  })

  it('delivers messages of every type, in order, both ways', async () => {
    const { a, b } = await pair()
    const toB: Message[] = []
    const toA: Message[] = []
    for (let i = 1; i <= 600; i++) {
      const m = sample(TYPES[i % TYPES.length]!, i, a.id, b.id)
      toB.push(m)
      a.transport.send(m)
      if (i % 3 === 0) {
        const r = sample(TYPES[i % TYPES.length]!, i, b.id, a.id)
        toA.push(r)
        b.transport.send(r)
      }
    }
    await until('600 messages at b', () => b.inbox.length >= toB.length)
    await until('200 messages at a', () => a.inbox.length >= toA.length)
    assert.deepEqual(b.inbox, toB)
    assert.deepEqual(a.inbox, toA)

    const s = snap(a.id, b.id, 3000)
    a.transport.send(s)
    await until('the snapshot at b', () => b.inbox.length > toB.length)
    assert.deepEqual(b.inbox[toB.length], s)

    const sa = a.transport.stats()
    const sb = b.transport.stats()
    assert.equal(
      Object.values(sa.sent).reduce((x, y) => x + y, 0),
      601
    )
    assert.equal(sa.sent.snap, 1)
    assert.equal(
      Object.values(sb.received).reduce((x, y) => x + y, 0),
      601
    )
    for (const t of TYPES) assert.equal(sb.received[t], 50, t)
    assert.deepEqual(
      Object.values(sa.droppedOutbound).filter((n) => n > 0),
      []
    )
    assert.deepEqual(
      Object.values(sb.droppedInbound).filter((n) => n > 0),
      []
    )
    assert.equal(sa.streams.outboundOpened, 1)
    assert.equal(sb.streams.inboundAccepted, 1)
    const peer = sa.peers.find((p) => p.peer === b.id)
    assert.ok(peer?.streamOpen)
    assert.equal(peer.queueMessages, 0)
  })

  it('delivers a 20 MiB snapshot intact while heartbeats keep flowing', async () => {
    const { a, b } = await pair()
    let seq = 0
    a.transport.send(heartbeat(++seq, a.id, b.id))
    await until('the raft stream is up', () => b.inbox.length === 1)
    const s = snap(a.id, b.id, 20 * 1024 * 1024)
    a.transport.send(s)
    const seqAtSnapshot = seq
    // Heartbeats sent after the snapshot was handed over, until it arrives.
    const deadline = Date.now() + 50_000
    while (!b.inbox.some((m) => m.type === 'snap') && Date.now() < deadline) {
      a.transport.send(heartbeat(++seq, a.id, b.id))
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    const snapAt = b.inbox.findIndex((m) => m.type === 'snap')
    assert.ok(snapAt > 0, 'the snapshot arrived')
    const got = b.inbox[snapAt] as SnapMessage
    assert.equal(got.snapshot.data.length, s.snapshot.data.length)
    assert.ok(sameBytes(got.snapshot.data, s.snapshot.data), 'snapshot data intact')
    assert.deepEqual(got.snapshot.meta, s.snapshot.meta)
    const heartbeatsBeforeSnap = b.inbox
      .slice(0, snapAt)
      .filter((m) => m.type === 'heartbeat' && m.commit > seqAtSnapshot)
    assert.ok(heartbeatsBeforeSnap.length > 0, 'heartbeats sent after the snapshot arrived before it')
    // And the heartbeats stayed in order around it.
    const commits = b.inbox.filter((m) => m.type === 'heartbeat').map((m) => (m as { commit: number }).commit)
    assert.deepEqual(
      commits,
      [...commits].sort((x, y) => x - y)
    )
    assert.equal(b.transport.stats().received.snap, 1)
  })

  it('runs one snapshot transfer per peer at a time', async () => {
    const { a, b } = await pair()
    const first = snap(a.id, b.id, 4 * 1024 * 1024)
    a.transport.send(first)
    a.transport.send(snap(a.id, b.id, 1000))
    assert.equal(a.transport.stats().droppedOutbound['snapshot-busy'], 1)
    await until('the first snapshot', () => b.inbox.find((m) => m.type === 'snap'))
    await until(
      'the transfer slot is free',
      () => a.transport.stats().peers.find((p) => p.peer === b.id)?.snapshotOut === null
    )
    const third = snap(a.id, b.id, 1000)
    a.transport.send(third)
    await until('the third snapshot', () => b.inbox.filter((m) => m.type === 'snap').length === 2)
    assert.ok(
      sameBytes((b.inbox.filter((m) => m.type === 'snap')[1] as SnapMessage).snapshot.data, third.snapshot.data)
    )
  })

  it('re-opens the stream when the peer comes back with the same key on the same port', async () => {
    const { a, b } = await pair()
    let seq = 0
    a.transport.send(heartbeat(++seq, a.id, b.id))
    await until('first heartbeat', () => b.inbox.length === 1)
    const { key, port } = b
    await b.stop()
    // Sent while b is down: dropped or queued, never blocking.
    for (let i = 0; i < 50; i++) a.transport.send(heartbeat(++seq, a.id, b.id))
    const b2 = await node({ key, port, allowed: new Set([a.id, b.id]) })
    await introduce(b2, a)
    const deadline = Date.now() + 40_000
    while (b2.inbox.length === 0 && Date.now() < deadline) {
      a.transport.send(heartbeat(++seq, a.id, b.id))
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    assert.ok(b2.inbox.length > 0, 'messages flow again')
    const before = b2.inbox.length
    for (let i = 0; i < 100; i++) a.transport.send(heartbeat(++seq, a.id, b.id))
    await until('100 more', () => b2.inbox.length >= before + 100)
    const commits = b2.inbox.map((m) => (m as { commit: number }).commit)
    assert.deepEqual(
      commits,
      [...commits].sort((x, y) => x - y)
    )
    assert.ok(a.transport.stats().streams.outboundOpened >= 2)
  })

  it('drops a malformed frame, a forged sender and a wrong recipient without breaking the stream', async () => {
    const { a, b } = await pair()
    const stream = await rawStream(b, a, RAFT_PROTOCOL)
    const lp = lpStream(stream)
    await lp.write(encodeMessage(heartbeat(1, b.id, a.id)))
    await lp.write(new Uint8Array([1, 2, 3]))
    await lp.write(encodeMessage(heartbeat(2, 'someone-else', a.id)))
    await lp.write(encodeMessage(heartbeat(3, b.id, b.id)))
    await lp.write(encodeMessage(snap(b.id, a.id, 10)))
    for (let i = 0; i < 20; i++) await lp.write(new Uint8Array([1, 7, i]))
    await lp.write(encodeMessage(heartbeat(4, b.id, a.id)))
    await until('two valid heartbeats', () => a.inbox.length >= 2)
    await lp.write(encodeMessage(heartbeat(5, b.id, a.id)))
    await until('a third', () => a.inbox.length >= 3)
    assert.deepEqual(
      a.inbox.map((m) => (m as { commit: number }).commit),
      [1, 4, 5]
    )
    const st = a.transport.stats()
    assert.equal(st.droppedInbound.malformed, 22)
    assert.equal(st.droppedInbound['forged-from'], 1)
    assert.equal(st.droppedInbound['wrong-to'], 1)
    assert.equal(st.streams.inboundReset, 0)
    assert.equal(stream.status, 'open')
    // Logged, but rate-limited: one line for the 22 malformed frames.
    const malformedLines = a.logLines.filter((l) => (JSON.parse(l) as { reason?: string }).reason === 'malformed')
    assert.equal(malformedLines.length, 1)
  })

  it("resets a stream that keeps sending garbage or an oversized frame; the peer's own stream still works", async () => {
    const { a, b } = await pair({
      limits: { maxInvalidFramesPerStream: 5, maxMessageBytes: 64 * 1024, maxEntryBytes: 32 * 1024 }
    })
    const garbage = await rawStream(b, a, RAFT_PROTOCOL)
    const lp = lpStream(garbage)
    for (let i = 0; i < 5; i++) await lp.write(new Uint8Array([0xff, i]))
    await until('the garbage stream is reset', () => a.transport.stats().streams.inboundReset === 1)
    await until('b sees the reset', () => garbage.status !== 'open')

    const big = await rawStream(b, a, RAFT_PROTOCOL)
    await lpStream(big, { maxDataLength: 1024 * 1024 }).write(new Uint8Array(100 * 1024))
    await until('the oversized frame is refused', () => a.transport.stats().droppedInbound['frame-too-large'] === 1)
    await until('b sees that reset too', () => big.status !== 'open')
    assert.equal(a.transport.stats().streams.inboundReset, 2)

    b.transport.send(heartbeat(1, b.id, a.id))
    await until('a valid message from b', () => a.inbox.length === 1)
  })

  it('delivers nothing from a non-member', async () => {
    const ka = await newKey()
    const kb = await newKey()
    const kc = await newKey()
    const kd = await newKey()
    // The gater of a lets c in (a stale allow-list, say), but c is not a member for a's transport.
    const a = await node({ key: ka.key, allowed: new Set([ka.id, kb.id, kc.id]), members: new Set([ka.id, kb.id]) })
    const c = await node({ key: kc.key, allowed: new Set([ka.id, kc.id]) })
    // d is not even let in by a's gater.
    const d = await node({ key: kd.key, allowed: new Set([ka.id, kd.id]) })
    await introduce(c, a)
    await introduce(d, a)
    c.transport.send(heartbeat(1, c.id, a.id))
    await until('the raft stream of c is refused', () => a.transport.stats().droppedInbound['not-member'] >= 1)
    c.transport.send(snap(c.id, a.id, 1000))
    await until('the snapshot stream of c is refused', () => a.transport.stats().droppedInbound['not-member'] >= 2)
    d.transport.send(heartbeat(1, d.id, a.id))
    await until('d cannot open a stream', () => d.transport.stats().streams.outboundOpenFailures >= 1)
    // a itself never sends to a non-member.
    a.transport.send(heartbeat(1, a.id, c.id))
    assert.equal(a.transport.stats().droppedOutbound['bad-address'], 1)
    assert.deepEqual(a.inbox, [])
    assert.equal(
      Object.values(a.transport.stats().received).reduce((x, y) => x + y, 0),
      0
    )
  })

  it('lets a newer snapshot transfer from the same peer replace an unfinished one', async () => {
    const { a, b } = await pair()
    const old = await rawStream(b, a, SNAPSHOT_PROTOCOL)
    const lp = lpStream(old)
    await lp.write(new Writer().u8(1).varint(5000).finish())
    await lp.write(new Uint8Array(10))
    await until(
      'a has the transfer in progress',
      () => a.transport.stats().peers.find((p) => p.peer === b.id)?.snapshotIn?.receivedBytes === 10
    )
    const s = snap(b.id, a.id, 5000)
    b.transport.send(s)
    const got = await until('the newer snapshot', () => a.inbox.find((m) => m.type === 'snap'))
    assert.deepEqual(got, s)
    assert.equal(a.transport.stats().droppedInbound['snapshot-replaced'], 1)
    await until('the old stream is reset', () => old.status !== 'open')
  })

  it('stops delivering from a peer that is no longer a member', async () => {
    const ka = await newKey()
    const kb = await newKey()
    const members = new Set([ka.id, kb.id])
    const a = await node({ key: ka.key, allowed: new Set([ka.id, kb.id]), members })
    const b = await node({ key: kb.key, allowed: new Set([ka.id, kb.id]) })
    await introduce(b, a)
    b.transport.send(heartbeat(1, b.id, a.id))
    await until('first heartbeat', () => a.inbox.length === 1)
    members.delete(kb.id)
    b.transport.send(heartbeat(2, b.id, a.id))
    await until('the second is refused', () => a.transport.stats().droppedInbound['not-member'] === 1)
    assert.equal(a.inbox.length, 1)
  })

  it('aborts a stalled snapshot transfer in either direction', async () => {
    const { a, b } = await pair({ timing: { snapshotStallTimeoutMs: 300 } })
    // Inbound: a header announcing 1000 bytes, 10 bytes, then nothing.
    const raw = await rawStream(b, a, SNAPSHOT_PROTOCOL)
    const lp = lpStream(raw)
    await lp.write(new Writer().u8(1).varint(1000).finish())
    await lp.write(new Uint8Array(10))
    await until(
      'a aborts the stalled inbound transfer',
      () => a.transport.stats().droppedInbound['snapshot-stalled'] === 1
    )
    await until('the slot is free', () => a.transport.stats().peers.find((p) => p.peer === b.id)?.snapshotIn == null)
    const s = snap(b.id, a.id, 5000)
    b.transport.send(s)
    await until('a later snapshot goes through', () => a.inbox.find((m) => m.type === 'snap'))

    // Outbound: a receiver that accepts the stream but never reads.
    await b.transport.stop()
    await b.libp2p.handle(SNAPSHOT_PROTOCOL, (stream) => {
      stream.pause()
      rawStreams.push(stream)
    })
    a.transport.send(snap(a.id, b.id, 8 * 1024 * 1024))
    await until(
      'a aborts the stalled outbound transfer',
      () => a.transport.stats().droppedOutbound['snapshot-stalled'] === 1
    )
    await until(
      'and frees the slot',
      () => a.transport.stats().peers.find((p) => p.peer === b.id)?.snapshotOut === null
    )
  })
})

describe('raft transport: queue and reopen policy', () => {
  const logger = pino({ level: 'silent' })
  const selfId = '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo'
  const peer = '12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK'

  interface Dial {
    resolve: (s: Stream) => void
    reject: (err: Error) => void
  }

  /** A libp2p stand-in whose dials are answered by the test. */
  function fakeLibp2p(): { libp2p: TransportLibp2p; dials: Dial[] } {
    const dials: Dial[] = []
    const libp2p = {
      peerId: peerIdFromString(selfId),
      handle: async () => {},
      unhandle: async () => {},
      dialProtocol: async () =>
        await new Promise<Stream>((resolve, reject) => {
          dials.push({ resolve, reject })
        })
    } as unknown as TransportLibp2p
    return { libp2p, dials }
  }

  async function readTerms(stream: Stream, n: number): Promise<number[]> {
    const lp = lpStream(stream)
    const terms: number[] = []
    for (let i = 0; i < n; i++) terms.push(decodeMessage((await lp.read()).subarray()).term)
    return terms
  }

  const vote = (term: number): Message => ({
    type: 'vote',
    from: selfId,
    to: peer,
    term,
    lastIndex: 1,
    lastTerm: 1,
    force: false
  })
  const hb = (term: number): Message => ({ type: 'heartbeat', from: selfId, to: peer, term, commit: 0, context: null })

  it('evicts the oldest non-critical message when full, keeps votes, drops a new message when only critical ones remain', async () => {
    const { libp2p, dials } = fakeLibp2p()
    const t = new RaftTransport({
      libp2p,
      selfId,
      isMember: () => true,
      logger,
      limits: { maxQueueMessagesPerPeer: 5 }
    })
    await t.start()
    try {
      t.send(vote(1))
      t.send(vote(2))
      for (let term = 3; term <= 8; term++) t.send(hb(term))
      t.send(vote(9))
      t.send(vote(10))
      t.send(vote(11))
      t.send(vote(12))
      assert.equal(dials.length, 1)
      const st = t.stats()
      assert.equal(st.droppedOutbound['queue-full'], 7)
      assert.equal(st.peers[0]!.queueMessages, 5)
      const [outbound, inbound] = await streamPair()
      dials[0]!.resolve(outbound)
      assert.deepEqual(await readTerms(inbound, 5), [1, 2, 9, 10, 11])
      t.send(hb(13))
      assert.deepEqual(await readTerms(inbound, 1), [13])
    } finally {
      await t.stop()
    }
  })

  it('bounds the queue by bytes too', async () => {
    const { libp2p, dials } = fakeLibp2p()
    const t = new RaftTransport({
      libp2p,
      selfId,
      isMember: () => true,
      logger,
      limits: { maxMessageBytes: 1000, maxEntryBytes: 500, maxQueueBytesPerPeer: 1000 }
    })
    await t.start()
    try {
      const app = (term: number): Message => ({
        type: 'app',
        from: selfId,
        to: peer,
        term,
        prevIndex: 0,
        prevTerm: 0,
        prevHash: h32(0),
        commit: 0,
        entries: [{ index: 1, term: 1, type: 'normal', data: new Uint8Array(300), hash: h32(1) }]
      })
      for (let term = 1; term <= 4; term++) t.send(app(term))
      assert.equal(t.stats().droppedOutbound['queue-full'], 2)
      assert.ok(t.stats().peers[0]!.queueBytes <= 1000)
      const [outbound, inbound] = await streamPair()
      dials[0]!.resolve(outbound)
      assert.deepEqual(await readTerms(inbound, 2), [3, 4])
    } finally {
      await t.stop()
    }
  })

  it('drops messages while a peer is unreachable without dialling again before the backoff', async () => {
    const { libp2p, dials } = fakeLibp2p()
    const t = new RaftTransport({ libp2p, selfId, isMember: () => true, logger })
    await t.start()
    try {
      t.send(hb(1))
      t.send(hb(2))
      dials[0]!.reject(new Error('connection refused'))
      await until('the failure is seen', () => t.stats().streams.outboundOpenFailures === 1)
      for (let term = 3; term < 1003; term++) t.send(hb(term))
      assert.equal(dials.length, 1, 'no dial during the backoff')
      assert.equal(t.stats().droppedOutbound.unreachable, 1002)
      assert.equal(t.stats().peers[0]!.queueMessages, 0)
    } finally {
      await t.stop()
    }
  })

  it('refuses to send before start, after stop, to itself or to a non-member', async () => {
    const { libp2p } = fakeLibp2p()
    const t = new RaftTransport({ libp2p, selfId, isMember: (id) => id !== 'stranger', logger })
    t.send(hb(1))
    assert.equal(t.stats().droppedOutbound.stopped, 1)
    await t.start()
    t.send({ ...hb(1), to: selfId })
    t.send({ ...hb(1), to: 'stranger' })
    t.send({ ...hb(1), from: peer })
    t.send({ ...hb(1), to: 'not-a-peer-id' })
    assert.equal(t.stats().droppedOutbound['bad-address'], 4)
    await t.stop()
    t.send(hb(2))
    assert.equal(t.stats().droppedOutbound.stopped, 2)
  })

  it('checks its options', () => {
    const { libp2p } = fakeLibp2p()
    assert.throws(
      () => new RaftTransport({ libp2p, selfId: peer, isMember: () => true, logger }),
      /selfId must be the libp2p node's peer id/
    )
    assert.throws(
      () => new RaftTransport({ libp2p, selfId, isMember: () => true, logger, limits: { maxQueueBytesPerPeer: 10 } }),
      /maxQueueBytesPerPeer .* must be at least maxMessageBytes/
    )
    assert.throws(
      () => new RaftTransport({ libp2p, selfId, isMember: () => true, logger, limits: { maxSnapshotBytes: -1 } }),
      /maxSnapshotBytes must be a positive integer/
    )
    assert.throws(
      () => new RaftTransport({ libp2p, selfId, isMember: () => true, logger, timing: { reopenMinMs: 0 } }),
      /reopenMinMs must be a positive number/
    )
  })
})
