import '../../daemon/host/polyfill.js'
import assert from 'node:assert/strict'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import pino from 'pino'
import { MemberRpc, RPC_PROTOCOL, RpcError } from '../../daemon/net/rpc.js'
import { introduce, newKey, startNode, until, type TestNode } from './nodes.js'

// Member-to-member calls (daemon/net/rpc.ts) over real libp2p nodes on loopback TCP with Noise and
// yamux: many calls share one stream per caller and callee, answers find their caller by call id,
// and the limits and membership rules of the per-call streams hold.

const enc = (s: string): Uint8Array => new TextEncoder().encode(s)
const dec = (b: Uint8Array): string => new TextDecoder().decode(b)

interface Pair {
  a: TestNode
  b: TestNode
  rpcA: MemberRpc
  rpcB: MemberRpc
  members: Set<string>
}

async function pair(): Promise<Pair> {
  const ka = await newKey()
  const kb = await newKey()
  const members = new Set([ka.id, kb.id])
  const a = await startNode({ key: ka.key, allowed: new Set(members) })
  const b = await startNode({ key: kb.key, allowed: new Set(members) })
  await introduce(a, b)
  await introduce(b, a)
  const logger = pino({ level: 'silent' })
  const rpcA = new MemberRpc({ libp2p: a.libp2p, isMember: (p) => members.has(p), logger })
  const rpcB = new MemberRpc({ libp2p: b.libp2p, isMember: (p) => members.has(p), logger })
  return { a, b, rpcA, rpcB, members }
}

describe('member calls (one stream per caller and callee)', function () {
  this.timeout(30_000)
  let p: Pair

  beforeEach(async () => {
    p = await pair()
  })

  afterEach(async () => {
    await p.rpcA.stop()
    await p.rpcB.stop()
    await p.a.stop()
    await p.b.stop()
  })

  it('answers concurrent calls of several protocols, each to its caller, over one stream', async () => {
    await p.rpcB.handle('/test/echo/1', async (req, from) => {
      // Answers out of order: a later call may be answered first.
      await new Promise((r) => setTimeout(r, (req[0] ?? 0) % 7))
      return enc(`${from === p.a.id ? 'a' : '?'}:${dec(req.subarray(1))}`)
    })
    await p.rpcB.handle('/test/upper/1', async (req) => enc(dec(req).toUpperCase()))
    const calls = Array.from({ length: 50 }, (_, i) =>
      i % 2 === 0
        ? p.rpcA.call(p.b.id, '/test/echo/1', new Uint8Array([i, ...enc(`m${i}`)]), 5_000)
        : p.rpcA.call(p.b.id, '/test/upper/1', enc(`m${i}`), 5_000)
    )
    const answers = (await Promise.all(calls)).map(dec)
    answers.forEach((answer, i) => {
      assert.equal(answer, i % 2 === 0 ? `a:m${i}` : `M${i}`)
    })
    // Another call reuses the stream rather than opening one per call.
    assert.equal(dec(await p.rpcA.call(p.b.id, '/test/upper/1', enc('x'), 5_000)), 'X')
    const streams = p.a.libp2p
      .getConnections(peerIdFromString(p.b.id))
      .flatMap((c) => c.streams)
      .filter((s) => s.protocol === RPC_PROTOCOL)
    assert.equal(streams.length, 1, 'one call stream from a to b')
  })

  it("carries the handler's error code and message back to the caller", async () => {
    await p.rpcB.handle('/test/refuse/1', async () => {
      throw new RpcError('refused', 'not today')
    })
    await assert.rejects(p.rpcA.call(p.b.id, '/test/refuse/1', enc('x'), 5_000), (err: unknown) => {
      assert.ok(err instanceof RpcError)
      assert.equal(err.code, 'refused')
      assert.equal(err.message, 'not today')
      return true
    })
  })

  it('a protocol the member does not serve is an error of that call alone', async () => {
    await p.rpcB.handle('/test/upper/1', async (req) => enc(dec(req).toUpperCase()))
    await assert.rejects(p.rpcA.call(p.b.id, '/test/missing/1', enc('x'), 5_000), (err: unknown) => {
      assert.ok(err instanceof RpcError)
      assert.equal(err.code, 'unreachable')
      assert.match(err.message, /does not serve \/test\/missing\/1/)
      return true
    })
    assert.equal(dec(await p.rpcA.call(p.b.id, '/test/upper/1', enc('y'), 5_000)), 'Y')
  })

  it('a call that gets no answer in time times out; a late answer is dropped and later calls work', async () => {
    let slow = true
    await p.rpcB.handle('/test/slow/1', async (req) => {
      if (slow) await new Promise((r) => setTimeout(r, 300))
      return req
    })
    // The stream opens first: the timeout below is the answer's, not the open's (which says unreachable).
    slow = false
    assert.equal(dec(await p.rpcA.call(p.b.id, '/test/slow/1', enc('open'), 5_000)), 'open')
    slow = true
    await assert.rejects(p.rpcA.call(p.b.id, '/test/slow/1', enc('late'), 50), (err: unknown) => {
      assert.ok(err instanceof RpcError)
      assert.equal(err.code, 'timeout')
      return true
    })
    slow = false
    await new Promise((r) => setTimeout(r, 400))
    assert.equal(dec(await p.rpcA.call(p.b.id, '/test/slow/1', enc('next'), 5_000)), 'next')
  })

  it('calls fail when the callee stops, and work again once it serves on a new stream', async () => {
    await p.rpcB.handle('/test/upper/1', async (req) => enc(dec(req).toUpperCase()))
    assert.equal(dec(await p.rpcA.call(p.b.id, '/test/upper/1', enc('a'), 5_000)), 'A')
    await p.rpcB.stop()
    await assert.rejects(p.rpcA.call(p.b.id, '/test/upper/1', enc('b'), 2_000), RpcError)
    const again = new MemberRpc({
      libp2p: p.b.libp2p,
      isMember: (x) => p.members.has(x),
      logger: pino({ level: 'silent' })
    })
    await again.handle('/test/upper/1', async (req) => enc(dec(req).toUpperCase()))
    try {
      let answer: string | undefined
      const deadlineMs = Date.now() + 20_000
      while (answer === undefined && Date.now() < deadlineMs) {
        answer = await p.rpcA.call(p.b.id, '/test/upper/1', enc('c'), 2_000).then(dec, () => undefined)
        if (answer === undefined) await new Promise((r) => setTimeout(r, 20))
      }
      assert.equal(answer, 'C')
    } finally {
      await again.stop()
    }
  })

  it('serves at most 32 requests of one member at once; the rest are answered busy (rule: a limit on everything)', async () => {
    let release: () => void = () => {}
    const gate = new Promise<void>((r) => {
      release = r
    })
    await p.rpcB.handle('/test/held/1', async (req) => {
      await gate
      return req
    })
    const calls = Array.from({ length: 40 }, (_, i) =>
      p.rpcA.call(p.b.id, '/test/held/1', new Uint8Array([i]), 10_000).then(
        () => 'ok',
        (err: unknown) => (err instanceof RpcError ? err.code : 'other')
      )
    )
    // The 8 over the limit are answered at once, while the 32 wait for the gate.
    const busy = await Promise.all(calls.slice(32))
    assert.deepEqual(busy, Array(8).fill('busy'))
    release()
    assert.deepEqual(await Promise.all(calls.slice(0, 32)), Array(32).fill('ok'))
  })

  it('serves no one who is not a member (rule: only members are served)', async () => {
    await p.rpcB.handle('/test/upper/1', async (req) => enc(dec(req).toUpperCase()))
    p.members.delete(p.a.id)
    await assert.rejects(p.rpcA.call(p.b.id, '/test/upper/1', enc('x'), 5_000), (err: unknown) => {
      assert.ok(err instanceof RpcError)
      assert.equal(err.code, 'refused')
      return true
    })
  })

  it('resets a stream that sends a malformed frame, and keeps serving others (rule: untrusted input is validated)', async () => {
    let served = 0
    await p.rpcB.handle('/test/upper/1', async (req) => {
      served++
      return enc(dec(req).toUpperCase())
    })
    const stream = await p.a.libp2p.dialProtocol(peerIdFromString(p.b.id), RPC_PROTOCOL)
    const raw = lpStream(stream)
    await raw.write(new Uint8Array([1, 0, 0, 0, 1, 200, 65])) // a protocol name longer than the frame
    await until('the malformed stream reset', () => stream.status !== 'open')
    assert.equal(served, 0)
    assert.equal(dec(await p.rpcA.call(p.b.id, '/test/upper/1', enc('ok'), 5_000)), 'OK')
  })
})
