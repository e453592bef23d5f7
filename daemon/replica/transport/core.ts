import assert from 'node:assert/strict'
import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import type { Message, MessageType } from '../../../board/raft/types.js'
import { DEFAULT_WIRE_LIMITS, MESSAGE_TYPES, resolveWireLimits, type WireLimits } from '../../../board/wire.js'
import { errorMessage } from '../../host/errors.js'
import { LogLimiter, type Logger } from '../../host/log.js'

// What both stream protocols share: the options, limits and counters of the transport, and the
// checks every inbound message passes before it reaches the Raft driver.

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
export type OutboundDropReason = (typeof OUTBOUND_DROP_REASONS)[number]

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
export type InboundDropReason = (typeof INBOUND_DROP_REASONS)[number]

export interface PeerTransportStats {
  peer: string
  queueMessages: number
  queueBytes: number
  streamOpen: boolean
  /** Stream opens since the last stream that stayed open healthyStreamMs (drives the re-open backoff). */
  openFailures: number
  snapshotOut: { sentBytes: number; totalBytes: number } | null
  snapshotIn: { receivedBytes: number; totalBytes: number } | null
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

export interface TransportCounters {
  sent: Record<MessageType, number>
  received: Record<MessageType, number>
  sentBytes: number
  sentWrites: number
  receivedBytes: number
  droppedOutbound: Record<OutboundDropReason, number>
  droppedInbound: Record<InboundDropReason, number>
  streams: { outboundOpened: number; outboundOpenFailures: number; inboundAccepted: number; inboundReset: number }
}

export type TransportState = 'new' | 'running' | 'stopping' | 'stopped'

/**
 * The state the message streams and the snapshot streams share: the resolved limits and timing,
 * the counters, the running state and the handler, and the membership and address checks.
 */
export class TransportCore {
  readonly libp2p: TransportLibp2p
  readonly selfId: string
  readonly isMember: (peerId: string) => boolean
  readonly logger: Logger
  readonly limits: TransportLimits
  readonly timing: TransportTiming
  readonly logLimiter: LogLimiter
  state: TransportState = 'new'
  handler: MessageHandler | null = null
  readonly counters: TransportCounters = {
    sent: zeroCounts(MESSAGE_TYPES),
    received: zeroCounts(MESSAGE_TYPES),
    sentBytes: 0,
    sentWrites: 0,
    receivedBytes: 0,
    droppedOutbound: zeroCounts(OUTBOUND_DROP_REASONS),
    droppedInbound: zeroCounts(INBOUND_DROP_REASONS),
    streams: { outboundOpened: 0, outboundOpenFailures: 0, inboundAccepted: 0, inboundReset: 0 }
  }

  constructor(options: RaftTransportOptions) {
    this.libp2p = options.libp2p
    this.selfId = options.selfId
    this.isMember = options.isMember
    this.logger = options.logger
    assert.equal(options.libp2p.peerId.toString(), options.selfId, "selfId must be the libp2p node's peer id")
    const { wire, transport } = splitLimits(options.limits ?? {})
    this.limits = Object.freeze({ ...DEFAULT_TRANSPORT_LIMITS, ...transport, ...resolveWireLimits(wire) })
    for (const [key, value] of Object.entries(this.limits)) {
      if (!Number.isSafeInteger(value) || value < 1)
        throw new RangeError(`raft transport limits: ${key} must be a positive integer, got ${String(value)}`)
    }
    if (this.limits.maxQueueBytesPerPeer < this.limits.maxMessageBytes) {
      throw new RangeError(
        `raft transport limits: maxQueueBytesPerPeer (${this.limits.maxQueueBytesPerPeer}) must be at least maxMessageBytes (${this.limits.maxMessageBytes})`
      )
    }
    this.timing = Object.freeze({ ...DEFAULT_TRANSPORT_TIMING, ...stripUndefined(options.timing ?? {}) })
    for (const [key, value] of Object.entries(this.timing)) {
      if (!Number.isFinite(value) || value <= 0)
        throw new RangeError(`raft transport timing: ${key} must be a positive number, got ${String(value)}`)
    }
    this.logLimiter = new LogLimiter(this.logger, this.timing.logIntervalMs)
  }

  get running(): boolean {
    return this.state === 'running'
  }

  /** The sending member of an inbound stream, or null once the stream is refused (stopped, or not a member). */
  acceptInbound(stream: Stream, connection: Connection): string | null {
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

  /** Hands a decoded message to the handler if it is addressed right; false if it was invalid. */
  deliver(peer: string, m: Message): boolean {
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

  dropOut(reason: OutboundDropReason, peer: string, fields: Record<string, unknown>): void {
    this.counters.droppedOutbound[reason]++
    this.logLimiter.log(
      reason === 'queue-full' || reason === 'snapshot-busy' ? 'debug' : 'warn',
      `${peer}:out:${reason}`,
      { peer, reason, ...fields },
      'raft transport: dropped an outbound message'
    )
  }

  dropIn(reason: InboundDropReason, peer: string, fields: Record<string, unknown>): void {
    this.counters.droppedInbound[reason]++
    this.logLimiter.log(
      'warn',
      `${peer}:in:${reason}`,
      { peer, reason, ...fields },
      'raft transport: dropped an inbound message'
    )
  }
}

/** Reads a source to its end, discarding it (the far side is not supposed to write on this stream). */
export async function discard(source: AsyncIterable<unknown>): Promise<void> {
  try {
    for await (const _ of source) {
      /* nothing is expected here */
    }
  } catch {
    /* the stream's own close handling reports errors */
  }
}

function zeroCounts<K extends string>(keys: readonly K[]): Record<K, number> {
  const out = {} as Record<K, number>
  for (const k of keys) out[k] = 0
  return out
}

const WIRE_KEYS = new Set(Object.keys(DEFAULT_WIRE_LIMITS))

function splitLimits(limits: Partial<TransportLimits>): {
  wire: Partial<WireLimits>
  transport: Partial<TransportLimits>
} {
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

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {}
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v
  return out
}
