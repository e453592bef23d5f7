import assert from 'node:assert/strict'
import { peerIdFromString } from '@libp2p/peer-id'
import { messageStreamToDuplex } from '@libp2p/utils'
import * as lp from 'it-length-prefixed'
import { pipe } from 'it-pipe'
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { Message, MessageType, SnapMessage } from '../../board/raft/types.js'
import {
  DEFAULT_WIRE_LIMITS, MESSAGE_TYPES, decodeMessage, encodeMessage, maxSnapMessageBytes, resolveWireLimits, type WireLimits
} from '../../board/wire.js'
import { concatBytes } from '../../protocol/bytes.js'
import { DecodeError, Writer, decodeAll } from '../../protocol/codec.js'
import { errorMessage } from '../host/errors.js'
import { LogLimiter, type Logger } from '../host/log.js'

/** Raft messages other than snapshots: one long-lived stream per peer and direction, length-prefixed frames. */
export const RAFT_PROTOCOL = '/poolboard/raft/1.0.0'
/**
 * One snapshot per stream: a header frame (version u8, total length varint), then the encoded
 * `snap` message in chunks; the sender closes its end after the last chunk.
 */
export const SNAPSHOT_PROTOCOL = '/poolboard/snapshot/1.0.0'
const SNAPSHOT_STREAM_VERSION = 1

/** Limits of the transport: the wire limits plus queue, batch and snapshot limits. */
export interface TransportLimits extends WireLimits {
  /** Messages waiting to be written to one peer, at most. */
  readonly maxQueueMessagesPerPeer: number
  /** Encoded bytes waiting to be written to one peer, at most (at least maxMessageBytes). */
  readonly maxQueueBytesPerPeer: number
  /** Frames are coalesced into writes of up to this many bytes (one large frame is written alone). */
  readonly maxBatchBytes: number
  /** Size of the chunks a snapshot is sent in, and the largest chunk accepted. */
  readonly snapshotChunkBytes: number
  /** Inbound snapshot transfers in progress at once, over all peers (one per peer in any case). */
  readonly maxConcurrentInboundSnapshots: number
  /** Invalid frames (malformed, forged `from`, wrong `to`) accepted on one inbound stream before it is reset. */
  readonly maxInvalidFramesPerStream: number
}

export const DEFAULT_TRANSPORT_LIMITS: TransportLimits = Object.freeze({
  ...DEFAULT_WIRE_LIMITS,
  maxQueueMessagesPerPeer: 4096,
  maxQueueBytesPerPeer: 8 * 1024 * 1024,
  maxBatchBytes: 256 * 1024,
  snapshotChunkBytes: 1024 * 1024,
  maxConcurrentInboundSnapshots: 2,
  maxInvalidFramesPerStream: 100
})

export interface TransportTiming {
  /** Delay after a failed stream open before the next attempt; doubles per failure up to reopenMaxMs (with jitter). */
  readonly reopenMinMs: number
  readonly reopenMaxMs: number
  /** A stream that stayed open this long resets the backoff when it closes. */
  readonly healthyStreamMs: number
  /** Dialling the peer plus negotiating the protocol, at most. */
  readonly openTimeoutMs: number
  /** A snapshot transfer (either direction) that makes no progress for this long is aborted. */
  readonly snapshotStallTimeoutMs: number
  /** stop() waits this long for queued frames to be written before resetting the streams. */
  readonly closeTimeoutMs: number
  /** At most one log line per peer and reason per this many ms (the rest are counted in `suppressed`). */
  readonly logIntervalMs: number
}

export const DEFAULT_TRANSPORT_TIMING: TransportTiming = Object.freeze({
  reopenMinMs: 100,
  reopenMaxMs: 2_000,
  healthyStreamMs: 1_000,
  openTimeoutMs: 5_000,
  snapshotStallTimeoutMs: 30_000,
  closeTimeoutMs: 1_000,
  logIntervalMs: 10_000
})

/** What the transport needs of a libp2p node. */
export type TransportLibp2p = Pick<Libp2p, 'peerId' | 'handle' | 'unhandle' | 'dialProtocol'>

export interface RaftTransportOptions {
  libp2p: TransportLibp2p
  /** This node's id: its libp2p peer id string. */
  selfId: string
  /** Whether a peer id belongs to a pool member: nothing is sent to or accepted from anyone else. */
  isMember: (peerId: string) => boolean
  logger: Logger
  limits?: Partial<TransportLimits>
  timing?: Partial<TransportTiming>
}

export type MessageHandler = (message: Message) => void

export const OUTBOUND_DROP_REASONS = [
  /** The transport is not running. */
  'stopped',
  /** `to` is not a member, or is this node; or `from` is not this node. */
  'bad-address',
  /** The message cannot be encoded within the limits. */
  'encode-error',
  /** The peer's queue was full: the oldest non-critical message, or the new one, was dropped. */
  'queue-full',
  /** No stream to the peer could be opened (or one is in backoff after failures). */
  'unreachable',
  /** A snapshot transfer to that peer is already in progress. */
  'snapshot-busy',
  /** A snapshot transfer failed (open or write error). */
  'snapshot-failed',
  /** A snapshot transfer made no progress within snapshotStallTimeoutMs. */
  'snapshot-stalled'
] as const
export type OutboundDropReason = typeof OUTBOUND_DROP_REASONS[number]

export const INBOUND_DROP_REASONS = [
  /** The transport is not running. */
  'stopped',
  /** The remote peer is not a member: its stream is reset, its frames are not delivered. */
  'not-member',
  /** The frame is not a valid message (DecodeError), or a snapshot came on the raft stream. */
  'malformed',
  /** A length prefix above the frame limit: the stream cannot be resynchronised and is reset. */
  'frame-too-large',
  /** `from` is not the remote peer. */
  'forged-from',
  /** `to` is not this node. */
  'wrong-to',
  /** No handler is registered. */
  'no-handler',
  /** The handler threw. */
  'handler-error',
  /** Too many snapshots are being received from other peers. */
  'snapshot-busy',
  /** A snapshot transfer was superseded by a newer one from the same peer (it gave the old one up). */
  'snapshot-replaced',
  /** A snapshot stream was reset by the sender or lost with its connection. */
  'snapshot-aborted',
  /** A snapshot stream broke its framing (bad header, more or fewer bytes than announced, not a snap message). */
  'snapshot-malformed',
  /** A snapshot transfer made no progress within snapshotStallTimeoutMs. */
  'snapshot-stalled'
] as const
export type InboundDropReason = typeof INBOUND_DROP_REASONS[number]

export interface PeerTransportStats {
  peer: string
  queueMessages: number
  queueBytes: number
  streamOpen: boolean
  /** Stream opens since the last stream that stayed open healthyStreamMs (drives the re-open backoff). */
  openFailures: number
  snapshotOut: { sentBytes: number, totalBytes: number } | null
  snapshotIn: { receivedBytes: number, totalBytes: number } | null
  inboundStreamOpen: boolean
}

export interface RaftTransportStats {
  /** Messages handed to a stream, by type (a snapshot counts once its transfer completed). */
  sent: Record<MessageType, number>
  /** Messages delivered to the handler, by type. */
  received: Record<MessageType, number>
  sentBytes: number
  /** Writes handed to raft streams: sent messages / sentWrites is how well frames are coalesced. */
  sentWrites: number
  receivedBytes: number
  droppedOutbound: Record<OutboundDropReason, number>
  droppedInbound: Record<InboundDropReason, number>
  streams: {
    outboundOpened: number
    outboundOpenFailures: number
    inboundAccepted: number
    /** Inbound streams reset because of invalid frames or an oversized frame. */
    inboundReset: number
  }
  peers: PeerTransportStats[]
}

/** Elections and leadership transfer: never evicted from a full queue for a newer message. */
const CRITICAL_TYPES: ReadonlySet<MessageType> = new Set<MessageType>(['vote', 'preVote', 'voteResp', 'preVoteResp', 'timeoutNow', 'transferLeader'])

interface QueuedFrame {
  readonly bytes: Uint8Array
  readonly type: MessageType
  readonly critical: boolean
}

/** A FIFO of encoded frames with a byte count; O(1) at both ends, O(n) eviction from the middle. */
class FrameQueue {
  private items: Array<QueuedFrame | undefined> = []
  private head = 0
  bytes = 0

  get length (): number {
    return this.items.length - this.head
  }

  push (f: QueuedFrame): void {
    this.items.push(f)
    this.bytes += f.bytes.length
  }

  peek (): QueuedFrame | undefined {
    return this.items[this.head]
  }

  shift (): QueuedFrame | undefined {
    const f = this.items[this.head]
    if (f === undefined) return undefined
    this.items[this.head++] = undefined
    this.bytes -= f.bytes.length
    if (this.head === this.items.length) {
      this.items = []
      this.head = 0
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return f
  }

  /** Removes and returns the oldest frame satisfying `pred`. */
  removeOldest (pred: (f: QueuedFrame) => boolean): QueuedFrame | undefined {
    for (let i = this.head; i < this.items.length; i++) {
      const f = this.items[i]!
      if (!pred(f)) continue
      if (i === this.head) return this.shift()
      this.items.splice(i, 1)
      this.bytes -= f.bytes.length
      return f
    }
    return undefined
  }

  clear (): number {
    const n = this.length
    this.items = []
    this.head = 0
    this.bytes = 0
    return n
  }
}

/** One outbound raft stream and the writer loop draining the queue into it. */
interface OutboundSession {
  readonly stream: Stream
  readonly openedAtMs: number
  /** Resolves the writer's wait for frames. */
  wake: (() => void) | null
  closed: boolean
  writer: Promise<void> | null
}

interface OutboundSnapshot {
  readonly bytes: Uint8Array
  sentBytes: number
  lastProgressMs: number
  stalled: boolean
  stream: Stream | null
  readonly abort: AbortController
}

interface InboundSnapshot {
  readonly stream: Stream
  buffer: Uint8Array | null
  receivedBytes: number
  totalBytes: number
  delivered: boolean
  lastProgressMs: number
  stalled: boolean
  replaced: boolean
}

interface Link {
  readonly peer: string
  readonly peerId: PeerId
  readonly queue: FrameQueue
  session: OutboundSession | null
  opening: boolean
  failures: number
  nextOpenAtMs: number
  snapshot: OutboundSnapshot | null
}

/** A snapshot stream broke its framing. */
class SnapshotStreamError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'SnapshotStreamError'
  }
}

function zeroCounts<K extends string> (keys: readonly K[]): Record<K, number> {
  const out = {} as Record<K, number>
  for (const k of keys) out[k] = 0
  return out
}

/** Reads a source to its end, discarding it (the far side is not supposed to write on this stream). */
async function discard (source: AsyncIterable<unknown>): Promise<void> {
  try {
    for await (const _ of source) { /* nothing is expected here */ }
  } catch { /* the stream's own close handling reports errors */ }
}

/**
 * Carries Raft messages between the pool's member nodes over libp2p.
 *
 * Outbound, `send()` never blocks: it encodes the message and puts it in the peer's bounded queue;
 * a writer loop per peer drains the queue into one long-lived stream, coalescing frames and
 * respecting back-pressure. A dead stream is re-opened by the next send (with backoff after
 * failures); while a peer is unreachable its messages are dropped, which Raft tolerates.
 * Snapshots go on their own stream protocol, in chunks, so they never hold up heartbeats.
 *
 * Inbound, every frame is decoded within the limits and must come from a member, name that member
 * as `from` and this node as `to`; anything else is dropped, counted and (rate-limited) logged
 * without disturbing the stream's valid traffic.
 */
export class RaftTransport {
  private readonly libp2p: TransportLibp2p
  private readonly selfId: string
  private readonly isMember: (peerId: string) => boolean
  private readonly logger: Logger
  private readonly limits: TransportLimits
  private readonly timing: TransportTiming
  private readonly logLimiter: LogLimiter
  private readonly snapLimitBytes: number
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new'
  private handler: MessageHandler | null = null
  private readonly links = new Map<string, Link>()
  private readonly inbound = new Map<string, Stream>()
  private readonly inboundSnapshots = new Map<string, InboundSnapshot>()
  private snapshotTimer: NodeJS.Timeout | undefined
  private stopping: Promise<void> | null = null
  private readonly counters = {
    sent: zeroCounts(MESSAGE_TYPES),
    received: zeroCounts(MESSAGE_TYPES),
    sentBytes: 0,
    sentWrites: 0,
    receivedBytes: 0,
    droppedOutbound: zeroCounts(OUTBOUND_DROP_REASONS),
    droppedInbound: zeroCounts(INBOUND_DROP_REASONS),
    streams: { outboundOpened: 0, outboundOpenFailures: 0, inboundAccepted: 0, inboundReset: 0 }
  }

  constructor (options: RaftTransportOptions) {
    this.libp2p = options.libp2p
    this.selfId = options.selfId
    this.isMember = options.isMember
    this.logger = options.logger
    assert.equal(options.libp2p.peerId.toString(), options.selfId, 'selfId must be the libp2p node\'s peer id')
    const { wire, transport } = splitLimits(options.limits ?? {})
    this.limits = Object.freeze({ ...DEFAULT_TRANSPORT_LIMITS, ...transport, ...resolveWireLimits(wire) })
    for (const [key, value] of Object.entries(this.limits)) {
      if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`raft transport limits: ${key} must be a positive integer, got ${String(value)}`)
    }
    if (this.limits.maxQueueBytesPerPeer < this.limits.maxMessageBytes) {
      throw new RangeError(`raft transport limits: maxQueueBytesPerPeer (${this.limits.maxQueueBytesPerPeer}) must be at least maxMessageBytes (${this.limits.maxMessageBytes})`)
    }
    this.timing = Object.freeze({ ...DEFAULT_TRANSPORT_TIMING, ...stripUndefined(options.timing ?? {}) })
    for (const [key, value] of Object.entries(this.timing)) {
      if (!Number.isFinite(value) || value <= 0) throw new RangeError(`raft transport timing: ${key} must be a positive number, got ${String(value)}`)
    }
    this.snapLimitBytes = maxSnapMessageBytes(this.limits)
    this.logLimiter = new LogLimiter(this.logger, this.timing.logIntervalMs)
  }

  /** Registers the stream handlers. Messages sent before start() are dropped. */
  async start (): Promise<void> {
    assert.equal(this.state, 'new', 'RaftTransport.start() called twice')
    this.state = 'running'
    await this.libp2p.handle(RAFT_PROTOCOL, (stream, connection) => { this.onRaftStream(stream, connection) }, { maxInboundStreams: 8, maxOutboundStreams: 8 })
    await this.libp2p.handle(SNAPSHOT_PROTOCOL, (stream, connection) => { this.onSnapshotStream(stream, connection) }, { maxInboundStreams: 4, maxOutboundStreams: 4 })
    // One timer watches every snapshot transfer for stalls.
    const checkEveryMs = Math.max(10, Math.min(1_000, this.timing.snapshotStallTimeoutMs / 4))
    this.snapshotTimer = setInterval(() => { this.checkSnapshotStalls() }, checkEveryMs)
    this.snapshotTimer.unref()
  }

  /**
   * Stops: unregisters the handlers, drops what is queued, closes the outbound streams (waiting at
   * most closeTimeoutMs for what is being written), resets inbound streams and snapshot transfers.
   */
  async stop (): Promise<void> {
    if (this.stopping === null) {
      if (this.state !== 'running') {
        this.state = 'stopped'
        return
      }
      this.stopping = this.shutDown()
    }
    await this.stopping
  }

  private async shutDown (): Promise<void> {
    this.state = 'stopping'
    if (this.snapshotTimer !== undefined) clearInterval(this.snapshotTimer)
    await this.libp2p.unhandle([RAFT_PROTOCOL, SNAPSHOT_PROTOCOL]).catch((err: unknown) => {
      this.logger.debug({ err: errorMessage(err) }, 'raft transport: unhandle failed')
    })
    const closing: Array<Promise<void>> = []
    for (const link of this.links.values()) {
      this.counters.droppedOutbound.stopped += link.queue.clear()
      link.snapshot?.abort.abort(new Error('transport stopped'))
      link.snapshot?.stream?.abort(new Error('transport stopped'))
      const session = link.session
      if (session === null) continue
      session.wake?.()
      closing.push(this.closeSession(session))
    }
    for (const stream of this.inbound.values()) stream.abort(new Error('transport stopped'))
    for (const t of this.inboundSnapshots.values()) t.stream.abort(new Error('transport stopped'))
    await Promise.all(closing)
    this.inbound.clear()
    this.inboundSnapshots.clear()
    this.state = 'stopped'
  }

  /** Sets the function that receives every valid message addressed to this node (replacing any previous one). */
  onMessage (handler: MessageHandler): void {
    this.handler = handler
  }

  /**
   * Queues a message for its `to` peer and returns at once. Never throws for a message that
   * cannot be sent: it is dropped and counted (see stats().droppedOutbound).
   */
  send (message: Message): void {
    if (this.state !== 'running') {
      this.counters.droppedOutbound.stopped++
      return
    }
    const to = message.to
    if (message.from !== this.selfId || to === this.selfId || !this.isMember(to)) {
      this.dropOut('bad-address', to, { from: message.from, type: message.type })
      return
    }
    const link = this.link(to)
    if (link === null) {
      this.dropOut('bad-address', to, { type: message.type, err: 'not a peer id' })
      return
    }
    if (message.type === 'snap') {
      this.sendSnapshot(link, message)
      return
    }
    if (link.session === null && !link.opening && performance.now() < link.nextOpenAtMs) {
      this.counters.droppedOutbound.unreachable++
      return
    }
    let bytes: Uint8Array
    try {
      bytes = encodeMessage(message, this.limits)
    } catch (err) {
      this.dropOut('encode-error', to, { type: message.type, err: errorMessage(err) })
      return
    }
    this.enqueue(link, { bytes, type: message.type, critical: CRITICAL_TYPES.has(message.type) })
    if (link.session !== null) link.session.wake?.()
    else if (!link.opening) void this.open(link)
  }

  stats (): RaftTransportStats {
    const c = this.counters
    const peers = new Set([...this.links.keys(), ...this.inbound.keys(), ...this.inboundSnapshots.keys()])
    return {
      sent: { ...c.sent },
      received: { ...c.received },
      sentBytes: c.sentBytes,
      sentWrites: c.sentWrites,
      receivedBytes: c.receivedBytes,
      droppedOutbound: { ...c.droppedOutbound },
      droppedInbound: { ...c.droppedInbound },
      streams: { ...c.streams },
      peers: [...peers].sort().map((peer) => {
        const link = this.links.get(peer)
        const snapIn = this.inboundSnapshots.get(peer)
        return {
          peer,
          queueMessages: link?.queue.length ?? 0,
          queueBytes: link?.queue.bytes ?? 0,
          streamOpen: link?.session != null,
          openFailures: link?.failures ?? 0,
          snapshotOut: link?.snapshot == null ? null : { sentBytes: link.snapshot.sentBytes, totalBytes: link.snapshot.bytes.length },
          snapshotIn: snapIn === undefined ? null : { receivedBytes: snapIn.receivedBytes, totalBytes: snapIn.totalBytes },
          inboundStreamOpen: this.inbound.has(peer)
        }
      })
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Outbound raft stream

  private link (peer: string): Link | null {
    let link = this.links.get(peer)
    if (link === undefined) {
      let peerId: PeerId
      try {
        peerId = peerIdFromString(peer)
      } catch {
        return null
      }
      link = { peer, peerId, queue: new FrameQueue(), session: null, opening: false, failures: 0, nextOpenAtMs: 0, snapshot: null }
      this.links.set(peer, link)
    }
    return link
  }

  private enqueue (link: Link, frame: QueuedFrame): void {
    const q = link.queue
    const { maxQueueMessagesPerPeer, maxQueueBytesPerPeer } = this.limits
    while (q.length >= maxQueueMessagesPerPeer || q.bytes + frame.bytes.length > maxQueueBytesPerPeer) {
      if (q.removeOldest((f) => !f.critical) === undefined) break
      this.dropOut('queue-full', link.peer, { queueMessages: q.length, queueBytes: q.bytes })
    }
    if (q.length >= maxQueueMessagesPerPeer || q.bytes + frame.bytes.length > maxQueueBytesPerPeer) {
      this.dropOut('queue-full', link.peer, { queueMessages: q.length, queueBytes: q.bytes })
      return
    }
    q.push(frame)
  }

  private backoffMs (failures: number): number {
    const { reopenMinMs, reopenMaxMs } = this.timing
    const base = Math.min(reopenMaxMs, reopenMinMs * 2 ** Math.min(failures - 1, 20))
    // Jitter spreads the re-opens of nodes that lost each other at the same moment.
    return base * (0.75 + Math.random() * 0.5)
  }

  private async open (link: Link): Promise<void> {
    link.opening = true
    // Back off before the outcome is known: a stream that opens and dies at once counts as a failure
    // too, until one stays open healthyStreamMs.
    link.failures++
    link.nextOpenAtMs = performance.now() + this.backoffMs(link.failures)
    let stream: Stream
    try {
      stream = await this.libp2p.dialProtocol(link.peerId, RAFT_PROTOCOL, { signal: AbortSignal.timeout(this.timing.openTimeoutMs) })
    } catch (err) {
      link.opening = false
      this.counters.streams.outboundOpenFailures++
      const dropped = link.queue.clear()
      this.counters.droppedOutbound.unreachable += dropped
      this.logLimiter.log('debug', `${link.peer}:open`, { peer: link.peer, failures: link.failures, dropped, err: errorMessage(err) }, 'raft transport: could not open a stream')
      return
    }
    link.opening = false
    if (this.state !== 'running') {
      stream.abort(new Error('transport stopped'))
      return
    }
    this.counters.streams.outboundOpened++
    const session: OutboundSession = { stream, openedAtMs: performance.now(), wake: null, closed: false, writer: null }
    link.session = session
    stream.addEventListener('close', () => { this.onSessionClosed(link, session) }, { once: true })
    const duplex = messageStreamToDuplex(stream)
    void discard(duplex.source)
    session.writer = pipe(this.batches(link, session), duplex.sink).catch((err: unknown) => {
      if (this.state === 'running') {
        this.logLimiter.log('debug', `${link.peer}:write`, { peer: link.peer, err: errorMessage(err) }, 'raft transport: stream write failed')
      }
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    }).finally(() => { this.onSessionClosed(link, session) })
  }

  /** The writer loop: yields coalesced, length-prefixed frames while the session lives. */
  private async * batches (link: Link, session: OutboundSession): AsyncGenerator<Uint8Array, void, undefined> {
    const { maxBatchBytes, maxMessageBytes } = this.limits
    const q = link.queue
    while (true) {
      if (session.closed || this.state !== 'running' || session.stream.writeStatus !== 'writable') return
      if (q.length === 0) {
        await new Promise<void>((resolve) => { session.wake = resolve })
        session.wake = null
        // Let whatever else is sent in this turn of the event loop (the rest of a Ready, the answers
        // to every frame of one socket read) join the batch: one write instead of one per message.
        await new Promise<void>((resolve) => { setImmediate(resolve) })
        continue
      }
      const frames: Uint8Array[] = []
      let bytes = 0
      for (let f = q.peek(); f !== undefined; f = q.peek()) {
        if (frames.length > 0 && bytes + f.bytes.length > maxBatchBytes) break
        q.shift()
        frames.push(f.bytes)
        bytes += f.bytes.length
        this.counters.sent[f.type]++
      }
      this.counters.sentBytes += bytes
      this.counters.sentWrites++
      // it-length-prefixed yields a length prefix and the frame, twice per frame. Small frames are
      // joined into one write so that the muxer and the encryption handle one chunk, not two per frame.
      const parts = [...lp.encode(frames, { maxDataLength: maxMessageBytes })]
      if (bytes >= maxBatchBytes) {
        yield * parts
      } else {
        yield concatBytes(...parts)
      }
    }
  }

  private onSessionClosed (link: Link, session: OutboundSession): void {
    if (session.closed) return
    session.closed = true
    session.wake?.()
    if (link.session !== session) return
    link.session = null
    if (performance.now() - session.openedAtMs >= this.timing.healthyStreamMs) {
      link.failures = 0
      link.nextOpenAtMs = 0
    }
    if (this.state !== 'running' || link.queue.length === 0) return
    if (performance.now() >= link.nextOpenAtMs) {
      void this.open(link)
    } else {
      this.counters.droppedOutbound.unreachable += link.queue.clear()
    }
  }

  private async closeSession (session: OutboundSession): Promise<void> {
    const stream = session.stream
    const timeout = AbortSignal.timeout(this.timing.closeTimeoutMs)
    const aborted = new Promise<void>((resolve) => { timeout.addEventListener('abort', () => { resolve() }, { once: true }) })
    await Promise.race([session.writer ?? Promise.resolve(), aborted])
    if (stream.writeStatus !== 'closed') {
      await stream.close({ signal: timeout }).catch(() => { stream.abort(new Error('transport stopped')) })
    }
    if (timeout.aborted) stream.abort(new Error('transport stopped'))
  }

  // ---------------------------------------------------------------------------------------------
  // Inbound raft stream

  /** The sending member of an inbound stream, or null once the stream is refused (stopped, or not a member). */
  private acceptInbound (stream: Stream, connection: Connection): string | null {
    const peer = connection.remotePeer.toString()
    if (this.state !== 'running') {
      stream.abort(new Error('transport stopped'))
      return null
    }
    if (!this.isMember(peer)) {
      this.dropIn('not-member', peer, {})
      stream.abort(new Error('not a pool member'))
      return null
    }
    return peer
  }

  private onRaftStream (stream: Stream, connection: Connection): void {
    const peer = this.acceptInbound(stream, connection)
    if (peer === null) return
    this.counters.streams.inboundAccepted++
    // A peer has one raft stream to us: a newer one means it gave the old one up.
    const previous = this.inbound.get(peer)
    this.inbound.set(peer, stream)
    previous?.abort(new Error('replaced by a newer stream'))
    const duplex = messageStreamToDuplex(stream)
    let invalid = 0
    pipe(
      duplex.source,
      (source) => lp.decode(source, { maxDataLength: this.limits.maxMessageBytes }),
      async (frames) => {
        for await (const frame of frames) {
          if (this.receiveFrame(peer, frame.subarray())) continue
          if (++invalid >= this.limits.maxInvalidFramesPerStream) {
            this.counters.streams.inboundReset++
            this.logLimiter.log('warn', `${peer}:reset`, { peer, invalid }, 'raft transport: resetting a stream that sent too many invalid frames')
            stream.abort(new Error('too many invalid frames'))
            return
          }
        }
      }
    ).catch((err: unknown) => {
      if ((err as { code?: string } | null)?.code === 'ERR_MSG_DATA_TOO_LONG' || (err as { code?: string } | null)?.code === 'ERR_MSG_LENGTH_TOO_LONG') {
        this.counters.streams.inboundReset++
        this.dropIn('frame-too-large', peer, { limit: this.limits.maxMessageBytes })
        stream.abort(new Error('frame too large'))
      } else if (this.state === 'running') {
        this.logLimiter.log('debug', `${peer}:read`, { peer, err: errorMessage(err) }, 'raft transport: inbound stream ended with an error')
      }
    }).finally(() => {
      if (this.inbound.get(peer) === stream) this.inbound.delete(peer)
      // We never write on an inbound stream: closing our end completes the remote's close.
      if (stream.status === 'open') stream.close().catch(() => { stream.abort(new Error('close failed')) })
    })
  }

  /** Handles one frame of the raft stream; false if it was invalid (counts towards a reset). */
  private receiveFrame (peer: string, bytes: Uint8Array): boolean {
    this.counters.receivedBytes += bytes.length
    let m: Message
    try {
      m = decodeMessage(bytes, this.limits)
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err
      this.dropIn('malformed', peer, { err: err.message, bytes: bytes.length })
      return false
    }
    if (m.type === 'snap') {
      this.dropIn('malformed', peer, { err: 'snapshot on the raft stream' })
      return false
    }
    return this.deliver(peer, m)
  }

  private deliver (peer: string, m: Message): boolean {
    // Membership may have changed since the stream was accepted.
    if (!this.isMember(peer)) {
      this.dropIn('not-member', peer, { type: m.type })
      return false
    }
    if (m.from !== peer) {
      this.dropIn('forged-from', peer, { from: m.from, type: m.type })
      return false
    }
    if (m.to !== this.selfId) {
      this.dropIn('wrong-to', peer, { to: m.to, type: m.type })
      return false
    }
    if (this.state !== 'running') {
      this.counters.droppedInbound.stopped++
      return true
    }
    const handler = this.handler
    if (handler === null) {
      this.dropIn('no-handler', peer, { type: m.type })
      return true
    }
    this.counters.received[m.type]++
    try {
      handler(m)
    } catch (err) {
      this.dropIn('handler-error', peer, { type: m.type, err: errorMessage(err) })
    }
    return true
  }

  // ---------------------------------------------------------------------------------------------
  // Snapshots

  private sendSnapshot (link: Link, m: SnapMessage): void {
    if (link.snapshot !== null) {
      this.dropOut('snapshot-busy', link.peer, { index: m.snapshot.meta.index })
      return
    }
    let bytes: Uint8Array
    try {
      bytes = encodeMessage(m, this.limits)
    } catch (err) {
      this.dropOut('encode-error', link.peer, { type: m.type, err: errorMessage(err) })
      return
    }
    const transfer: OutboundSnapshot = { bytes, sentBytes: 0, lastProgressMs: performance.now(), stalled: false, stream: null, abort: new AbortController() }
    link.snapshot = transfer
    void this.runSnapshotOut(link, transfer).finally(() => {
      if (link.snapshot === transfer) link.snapshot = null
    })
  }

  private async runSnapshotOut (link: Link, t: OutboundSnapshot): Promise<void> {
    try {
      const signal = AbortSignal.any([t.abort.signal, AbortSignal.timeout(this.timing.openTimeoutMs)])
      const stream = await this.libp2p.dialProtocol(link.peerId, SNAPSHOT_PROTOCOL, { signal })
      t.stream = stream
      if (this.state !== 'running' || t.abort.signal.aborted) throw new Error('snapshot transfer aborted')
      t.lastProgressMs = performance.now()
      const duplex = messageStreamToDuplex(stream)
      void discard(duplex.source)
      await pipe(this.snapshotChunks(t), (source) => lp.encode(source, { maxDataLength: this.limits.snapshotChunkBytes }), duplex.sink)
      if (t.stalled) throw new Error('snapshot transfer stalled')
      this.counters.sent.snap++
      this.counters.sentBytes += t.bytes.length
      this.logger.debug({ peer: link.peer, bytes: t.bytes.length }, 'raft transport: snapshot sent')
    } catch (err) {
      if (this.state !== 'running') {
        this.counters.droppedOutbound.stopped++
      } else {
        this.dropOut(t.stalled ? 'snapshot-stalled' : 'snapshot-failed', link.peer, { bytes: t.bytes.length, sentBytes: t.sentBytes, err: errorMessage(err) })
      }
      t.stream?.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }

  private * snapshotChunks (t: OutboundSnapshot): Generator<Uint8Array, void, undefined> {
    yield new Writer(16).u8(SNAPSHOT_STREAM_VERSION).varint(t.bytes.length).finish()
    const chunk = this.limits.snapshotChunkBytes
    for (let off = 0; off < t.bytes.length; off += chunk) {
      // Pulled by the sink once the previous chunk is written: that is progress.
      t.lastProgressMs = performance.now()
      t.sentBytes = off
      yield t.bytes.subarray(off, Math.min(off + chunk, t.bytes.length))
    }
    t.sentBytes = t.bytes.length
  }

  private onSnapshotStream (stream: Stream, connection: Connection): void {
    const peer = this.acceptInbound(stream, connection)
    if (peer === null) return
    // A sender runs one transfer to us at a time: a new stream means it gave the old one up.
    const previous = this.inboundSnapshots.get(peer)
    if (previous === undefined && this.inboundSnapshots.size >= this.limits.maxConcurrentInboundSnapshots) {
      this.dropIn('snapshot-busy', peer, { inProgress: this.inboundSnapshots.size })
      stream.abort(new Error('too many snapshot transfers in progress'))
      return
    }
    const t: InboundSnapshot = { stream, buffer: null, receivedBytes: 0, totalBytes: 0, delivered: false, lastProgressMs: performance.now(), stalled: false, replaced: false }
    this.inboundSnapshots.set(peer, t)
    if (previous !== undefined) {
      previous.replaced = true
      previous.stream.abort(new Error('replaced by a newer snapshot transfer'))
    }
    const duplex = messageStreamToDuplex(stream)
    pipe(
      duplex.source,
      (source) => lp.decode(source, { maxDataLength: this.limits.snapshotChunkBytes }),
      async (frames) => {
        for await (const frame of frames) this.onSnapshotFrame(peer, t, frame)
        if (!t.delivered) throw new SnapshotStreamError(`stream ended after ${t.receivedBytes} of ${t.totalBytes} bytes`)
      }
    ).catch((err: unknown) => {
      if (this.state !== 'running') return
      const reason: InboundDropReason = t.replaced
        ? 'snapshot-replaced'
        : t.stalled ? 'snapshot-stalled' : err instanceof SnapshotStreamError ? 'snapshot-malformed' : 'snapshot-aborted'
      this.dropIn(reason, peer, { receivedBytes: t.receivedBytes, totalBytes: t.totalBytes, err: errorMessage(err) })
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    }).finally(() => {
      if (this.inboundSnapshots.get(peer) === t) this.inboundSnapshots.delete(peer)
      if (stream.status === 'open') stream.close().catch(() => { stream.abort(new Error('close failed')) })
    })
  }

  private onSnapshotFrame (peer: string, t: InboundSnapshot, frame: Iterable<Uint8Array> & { byteLength: number, subarray: () => Uint8Array }): void {
    t.lastProgressMs = performance.now()
    if (t.delivered) throw new SnapshotStreamError('data after the end of the snapshot')
    if (t.buffer === null) {
      let total: number
      try {
        total = decodeAll(frame.subarray(), 'snapshot stream header', (r) => {
          r.version([SNAPSHOT_STREAM_VERSION])
          return r.varint('totalBytes', this.snapLimitBytes)
        })
      } catch (err) {
        throw new SnapshotStreamError(errorMessage(err))
      }
      t.totalBytes = total
      t.buffer = new Uint8Array(total)
      return
    }
    if (t.receivedBytes + frame.byteLength > t.totalBytes) {
      throw new SnapshotStreamError(`more than the announced ${t.totalBytes} bytes`)
    }
    for (const part of frame) {
      t.buffer.set(part, t.receivedBytes)
      t.receivedBytes += part.length
    }
    this.counters.receivedBytes += frame.byteLength
    if (t.receivedBytes < t.totalBytes) return
    let m: Message
    try {
      // The buffer is ours alone: the snapshot's data may be a view into it rather than a copy.
      m = decodeMessage(t.buffer, this.limits, { shareInput: true })
    } catch (err) {
      throw new SnapshotStreamError(errorMessage(err))
    }
    t.buffer = null
    t.delivered = true
    if (m.type !== 'snap') throw new SnapshotStreamError(`a ${m.type} message on the snapshot stream`)
    this.deliver(peer, m)
  }

  private checkSnapshotStalls (): void {
    const nowMs = performance.now()
    const limitMs = this.timing.snapshotStallTimeoutMs
    for (const link of this.links.values()) {
      const t = link.snapshot
      if (t === null || nowMs - t.lastProgressMs <= limitMs) continue
      t.stalled = true
      t.abort.abort(new Error('snapshot transfer stalled'))
      t.stream?.abort(new Error('snapshot transfer stalled'))
    }
    for (const t of this.inboundSnapshots.values()) {
      if (nowMs - t.lastProgressMs <= limitMs) continue
      t.stalled = true
      t.stream.abort(new Error('snapshot transfer stalled'))
    }
  }

  // ---------------------------------------------------------------------------------------------

  private dropOut (reason: OutboundDropReason, peer: string, fields: Record<string, unknown>): void {
    this.counters.droppedOutbound[reason]++
    this.logLimiter.log(reason === 'queue-full' || reason === 'snapshot-busy' ? 'debug' : 'warn', `${peer}:out:${reason}`, { peer, reason, ...fields }, 'raft transport: dropped an outbound message')
  }

  private dropIn (reason: InboundDropReason, peer: string, fields: Record<string, unknown>): void {
    this.counters.droppedInbound[reason]++
    this.logLimiter.log('warn', `${peer}:in:${reason}`, { peer, reason, ...fields }, 'raft transport: dropped an inbound message')
  }
}

const WIRE_KEYS = new Set(Object.keys(DEFAULT_WIRE_LIMITS))

function splitLimits (limits: Partial<TransportLimits>): { wire: Partial<WireLimits>, transport: Partial<TransportLimits> } {
  const wire: Record<string, number> = {}
  const transport: Record<string, number> = {}
  for (const [key, value] of Object.entries(limits)) {
    if (value === undefined) continue
    if (WIRE_KEYS.has(key)) wire[key] = value
    else if (key in DEFAULT_TRANSPORT_LIMITS) transport[key] = value
    else throw new RangeError(`raft transport limits: unknown key ${key}`)
  }
  return { wire, transport }
}

function stripUndefined<T extends object> (o: T): Partial<T> {
  const out: Partial<T> = {}
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v
  return out
}
