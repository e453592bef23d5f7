import { parseArgs } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import pino from 'pino'
import type { AppMessage, Entry, Message } from '../board/raft/types.js'
import { decodeMessage, encodeMessage } from '../board/wire.js'
import { freePorts } from '../daemon/cluster/index.js'
import type { MemberEntry } from '../daemon/host/config.js'
import { MemberNetwork } from '../daemon/net/p2p.js'
import { RaftTransport } from '../daemon/replica/transport/index.js'
import { renderTable } from '../daemon/host/table.js'
import { waitFor } from '../daemon/host/wait.js'
import { UsageError, fmt, numberOption, summarize, writeResult, type Summary } from './lib.js'

const FROM = '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo'
const TO = '12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK'
const ENTRY_DATA_BYTES = 256

function append(from: string, to: string, entries: number, seq: number): AppMessage {
  const hash = new Uint8Array(32).fill(7)
  const list: Entry[] = []
  for (let i = 0; i < entries; i++) {
    const data = new Uint8Array(ENTRY_DATA_BYTES).fill(i & 0xff)
    list.push({ index: seq * entries + i + 1, term: 7, type: 'normal', data, hash })
  }
  return {
    type: 'app',
    from,
    to,
    term: 7,
    prevIndex: seq * entries,
    prevTerm: 7,
    prevHash: hash,
    entries: list,
    commit: seq * entries
  }
}

interface CodecRow {
  entries: number
  bytes: number
  encodePerS: number
  decodePerS: number
  bothPerS: number
  bothMiBPerS: number
}

/** Runs `f` in growing batches for about `ms` (after as long again to warm up the JIT) and returns calls per second. */
function rate(ms: number, f: () => void): number {
  const warmUntil = performance.now() + ms
  while (performance.now() < warmUntil) for (let i = 0; i < 64; i++) f()
  let calls = 0
  let batch = 16
  const start = performance.now()
  let elapsed = 0
  while (elapsed < ms) {
    for (let i = 0; i < batch; i++) f()
    calls += batch
    elapsed = performance.now() - start
    if (elapsed < ms / 20) batch *= 2
  }
  return calls / (elapsed / 1000)
}

function codec(ms: number): CodecRow[] {
  const rows: CodecRow[] = []
  for (const entries of [1, 16, 256]) {
    const m = append(FROM, TO, entries, 1000)
    const bytes = encodeMessage(m)
    let sink = 0
    const encodePerS = rate(ms, () => {
      sink += encodeMessage(m).length
    })
    const decodePerS = rate(ms, () => {
      sink += decodeMessage(bytes).term
    })
    const bothPerS = rate(ms, () => {
      sink += decodeMessage(encodeMessage(m)).term
    })
    if (sink === 0) throw new Error('unreachable')
    rows.push({
      entries,
      bytes: bytes.length,
      encodePerS,
      decodePerS,
      bothPerS,
      bothMiBPerS: (bothPerS * bytes.length) / 2 ** 20
    })
  }
  return rows
}

interface TransportRow {
  mode: string
  entries: number
  roundTrips: number
  perS: number
  payloadMiBPerS: number
  latencyMs: Summary
  messagesPerWrite: number
}

interface Pair {
  a: { net: MemberNetwork; transport: RaftTransport }
  b: { net: MemberNetwork; transport: RaftTransport }
  stop: () => Promise<void>
}

/** Two member nodes in this process, as the daemon wires them (MemberNetwork + RaftTransport), connected. */
async function startPair(): Promise<Pair> {
  const logger = pino({ level: 'silent' })
  const keys = await Promise.all([generateKeyPair('Ed25519'), generateKeyPair('Ed25519')])
  const ports = await freePorts(2)
  const members: MemberEntry[] = keys.map((k, i) => ({
    name: `n${i}`,
    peerId: peerIdFromPrivateKey(k).toString(),
    address: { host: '127.0.0.1', port: ports[i]! }
  }))
  const nodes = await Promise.all(
    keys.map(async (privateKey, i) => {
      const net = await MemberNetwork.create({
        privateKey,
        peerId: members[i]!.peerId,
        listen: members[i]!.address,
        members,
        logger
      })
      const transport = new RaftTransport({
        libp2p: net.libp2p,
        selfId: members[i]!.peerId,
        isMember: (id) => net.isMember(id),
        logger
      })
      await net.start()
      await transport.start()
      return { net, transport }
    })
  )
  const stop = async (): Promise<void> => {
    for (const n of nodes) {
      await n.transport.stop()
      await n.net.stop()
    }
  }
  try {
    await waitFor('the two nodes to connect', () => nodes[0]!.net.connectedMembers().length > 0, 30_000, 20)
  } catch (err) {
    await stop()
    throw err
  }
  return { a: nodes[0]!, b: nodes[1]!, stop }
}

/**
 * `count` round trips: a sends an append with `entries` entries, b answers each with an appResp.
 * At most `window` appends are in flight (1: strictly one after the other).
 */
async function roundTrips(pair: Pair, entries: number, count: number, window: number): Promise<TransportRow> {
  const aId = pair.a.net.peerId
  const bId = pair.b.net.peerId
  const messages = Array.from({ length: 64 }, (_, i) => append(aId, bId, entries, i))
  const sentAtMs = new Map<number, number>()
  const latencies: number[] = []
  let sent = 0
  let answered = 0
  let done: () => void = () => {}
  const finished = new Promise<void>((resolve) => {
    done = resolve
  })
  pair.b.transport.onMessage((m: Message) => {
    if (m.type === 'app')
      pair.b.transport.send({
        type: 'appResp',
        from: bId,
        to: aId,
        term: m.term,
        index: m.prevIndex,
        reject: false,
        hintIndex: 0,
        hintTerm: 0
      })
  })
  const sendOne = (): void => {
    const seq = sent++
    sentAtMs.set(seq, performance.now())
    // The sequence number rides in prevIndex and comes back in the answer's index.
    pair.a.transport.send({ ...messages[seq % messages.length]!, prevIndex: seq })
  }
  pair.a.transport.onMessage((m: Message) => {
    if (m.type !== 'appResp') return
    const at = sentAtMs.get(m.index)
    if (at === undefined) return
    sentAtMs.delete(m.index)
    latencies.push(performance.now() - at)
    answered++
    if (answered === count) done()
    else if (sent < count) sendOne()
  })
  const before = [pair.a.transport.stats(), pair.b.transport.stats()]
  const startMs = performance.now()
  for (let i = 0; i < Math.min(window, count); i++) sendOne()
  const timeout = setTimeout(() => {
    done()
  }, 120_000)
  await finished
  clearTimeout(timeout)
  const elapsedS = (performance.now() - startMs) / 1000
  if (answered < count)
    throw new Error(
      `only ${answered} of ${count} round trips completed (messages dropped: ${JSON.stringify(pair.a.transport.stats().droppedOutbound)})`
    )
  const perS = count / elapsedS
  const after = [pair.a.transport.stats(), pair.b.transport.stats()]
  const writes = after[0]!.sentWrites - before[0]!.sentWrites + after[1]!.sentWrites - before[1]!.sentWrites
  return {
    mode: window === 1 ? 'one at a time' : `window ${window}`,
    entries,
    roundTrips: count,
    perS,
    payloadMiBPerS: (perS * entries * ENTRY_DATA_BYTES) / 2 ** 20,
    latencyMs: summarize(latencies),
    messagesPerWrite: (2 * count) / writes
  }
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'codec-ms': { type: 'string', default: '1000' },
      'round-trips': { type: 'string', default: '5000' },
      pipelined: { type: 'string', default: '20000' },
      window: { type: 'string', default: '64' },
      only: { type: 'string' }
    }
  })
  const only = values.only
  if (only !== undefined && only !== 'codec' && only !== 'transport')
    throw new UsageError(`--only: expected codec or transport, got "${only}"`)
  const codecMs = numberOption('codec-ms', values['codec-ms'], { min: 1 })
  const sequential = numberOption('round-trips', values['round-trips'], { min: 1, integer: true })
  const pipelined = numberOption('pipelined', values.pipelined, { min: 1, integer: true })
  const window = numberOption('window', values.window, { min: 1, integer: true })
  let codecRows: CodecRow[] = []
  let transportRows: TransportRow[] = []

  if (only !== 'transport') {
    codecRows = codec(codecMs)
    process.stdout.write(`\nwire codec: append messages, ${ENTRY_DATA_BYTES}-byte entries, one core\n`)
    process.stdout.write(
      renderTable(
        ['entries', 'bytes', 'encode msg/s', 'decode msg/s', 'enc+dec msg/s', 'enc+dec entries/s', 'enc+dec MiB/s'],
        codecRows.map((r) => [
          String(r.entries),
          String(r.bytes),
          fmt(r.encodePerS, 0),
          fmt(r.decodePerS, 0),
          fmt(r.bothPerS, 0),
          fmt(r.bothPerS * r.entries, 0),
          fmt(r.bothMiBPerS, 1)
        ]),
        { alignRight: [0, 1, 2, 3, 4, 5, 6] }
      ) + '\n'
    )
  }

  if (only !== 'codec') {
    const pair = await startPair()
    try {
      await roundTrips(pair, 1, Math.min(500, sequential), 1) // warm up: streams open, JIT
      transportRows = [
        await roundTrips(pair, 1, sequential, 1),
        await roundTrips(pair, 16, sequential, 1),
        await roundTrips(pair, 1, pipelined, window),
        await roundTrips(pair, 16, pipelined, window)
      ]
    } finally {
      await pair.stop()
    }
    process.stdout.write(
      '\nraft transport: append -> appResp round trips between two nodes in one process (loopback TCP, noise, yamux)\n'
    )
    process.stdout.write(
      renderTable(
        [
          'mode',
          'entries',
          'round trips',
          'round trips/s',
          'payload MiB/s',
          'p50 ms',
          'p99 ms',
          'max ms',
          'msgs/write'
        ],
        transportRows.map((r) => [
          r.mode,
          String(r.entries),
          String(r.roundTrips),
          fmt(r.perS, 0),
          fmt(r.payloadMiBPerS, 2),
          fmt(r.latencyMs.p50, 3),
          fmt(r.latencyMs.p99, 3),
          fmt(r.latencyMs.max, 1),
          fmt(r.messagesPerWrite, 1)
        ]),
        { alignRight: [1, 2, 3, 4, 5, 6, 7, 8] }
      ) + '\n'
    )
  }
  process.stdout.write(`results: ${writeResult('wire', { codec: codecRows, transport: transportRows })}\n`)
}
