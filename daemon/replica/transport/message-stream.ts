import { peerIdFromString } from '@libp2p/peer-id'
import { messageStreamToDuplex } from '@libp2p/utils'
import * as lp from 'it-length-prefixed'
import { pipe } from 'it-pipe'
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import type { Message } from '../../../board/raft/types.js'
import { decodeMessage, encodeMessage } from '../../../board/wire.js'
import { concatBytes } from '../../../protocol/bytes.js'
import { DecodeError } from '../../../protocol/codec.js'
import { errorMessage } from '../../host/errors.js'
import { discard, type TransportCore } from './core.js'
import { CRITICAL_TYPES, FrameQueue, type QueuedFrame } from './frame-queue.js'

/** Raft messages other than snapshots: one long-lived stream per peer and direction, length-prefixed frames. */
export const RAFT_PROTOCOL = '/poolboard/raft/1.0.0'

/** One outbound raft stream and the writer loop draining the queue into it. */
interface OutboundSession {
  readonly stream: Stream
  readonly openedAtMs: number
  /** Resolves the writer's wait for frames. */
  wake: (() => void) | null
  closed: boolean
  writer: Promise<void> | null
}

/** Everything this node holds for sending to one peer: its queue, its stream and the re-open backoff. */
export interface Link {
  readonly peer: string
  readonly peerId: PeerId
  readonly queue: FrameQueue
  session: OutboundSession | null
  opening: boolean
  failures: number
  nextOpenAtMs: number
}

/**
 * The raft message protocol. Outbound, `send()` never blocks: it encodes the message and puts it
 * in the peer's bounded queue; a writer loop per peer drains the queue into one long-lived stream,
 * coalescing frames and respecting back-pressure. A dead stream is re-opened by the next send
 * (with backoff after failures); while a peer is unreachable its messages are dropped, which Raft
 * tolerates. Inbound, one stream per peer; invalid frames are dropped and counted, and a stream
 * that sends too many is reset.
 */
export class MessageStreams {
  private readonly links = new Map<string, Link>()
  private readonly inbound = new Map<string, Stream>()

  constructor(private readonly core: TransportCore) {}

  /** The peer's link, created on first use; null if `peer` is not a peer id. */
  link(peer: string): Link | null {
    let link = this.links.get(peer)
    if (link === undefined) {
      let peerId: PeerId
      try {
        peerId = peerIdFromString(peer)
      } catch {
        return null
      }
      link = { peer, peerId, queue: new FrameQueue(), session: null, opening: false, failures: 0, nextOpenAtMs: 0 }
      this.links.set(peer, link)
    }
    return link
  }

  existingLink(peer: string): Link | undefined {
    return this.links.get(peer)
  }

  /** Peers this node sends to or receives raft streams from. */
  peers(): string[] {
    return [...this.links.keys(), ...this.inbound.keys()]
  }

  hasInbound(peer: string): boolean {
    return this.inbound.has(peer)
  }

  /** Queues a non-snapshot message on an addressed link (see RaftTransport.send). */
  send(link: Link, message: Message): void {
    const core = this.core
    if (link.session === null && !link.opening && performance.now() < link.nextOpenAtMs) {
      core.counters.droppedOutbound.unreachable++
      return
    }
    let bytes: Uint8Array
    try {
      bytes = encodeMessage(message, core.limits)
    } catch (err) {
      core.dropOut('encode-error', link.peer, { type: message.type, err: errorMessage(err) })
      return
    }
    this.enqueue(link, { bytes, type: message.type, critical: CRITICAL_TYPES.has(message.type) })
    if (link.session !== null) link.session.wake?.()
    else if (!link.opening) void this.open(link)
  }

  /** Drops what is queued, closes the outbound streams and resets the inbound ones; resolves once closed. */
  async stop(): Promise<void> {
    const closing: Array<Promise<void>> = []
    for (const link of this.links.values()) {
      this.core.counters.droppedOutbound.stopped += link.queue.clear()
      const session = link.session
      if (session === null) continue
      session.wake?.()
      closing.push(this.closeSession(session))
    }
    for (const stream of this.inbound.values()) stream.abort(new Error('transport stopped'))
    await Promise.all(closing)
    this.inbound.clear()
  }

  // ---------------------------------------------------------------------------------------------
  // Outbound

  private enqueue(link: Link, frame: QueuedFrame): void {
    const q = link.queue
    const { maxQueueMessagesPerPeer, maxQueueBytesPerPeer } = this.core.limits
    while (q.length >= maxQueueMessagesPerPeer || q.bytes + frame.bytes.length > maxQueueBytesPerPeer) {
      if (q.removeOldest((f) => !f.critical) === undefined) break
      this.core.dropOut('queue-full', link.peer, { queueMessages: q.length, queueBytes: q.bytes })
    }
    if (q.length >= maxQueueMessagesPerPeer || q.bytes + frame.bytes.length > maxQueueBytesPerPeer) {
      this.core.dropOut('queue-full', link.peer, { queueMessages: q.length, queueBytes: q.bytes })
      return
    }
    q.push(frame)
  }

  private backoffMs(failures: number): number {
    const { reopenMinMs, reopenMaxMs } = this.core.timing
    const base = Math.min(reopenMaxMs, reopenMinMs * 2 ** Math.min(failures - 1, 20))
    // Jitter spreads the re-opens of nodes that lost each other at the same moment.
    return base * (0.75 + Math.random() * 0.5)
  }

  private async open(link: Link): Promise<void> {
    const core = this.core
    link.opening = true
    // Back off before the outcome is known: a stream that opens and dies at once counts as a failure
    // too, until one stays open healthyStreamMs.
    link.failures++
    link.nextOpenAtMs = performance.now() + this.backoffMs(link.failures)
    let stream: Stream
    try {
      stream = await core.libp2p.dialProtocol(link.peerId, RAFT_PROTOCOL, {
        signal: AbortSignal.timeout(core.timing.openTimeoutMs)
      })
    } catch (err) {
      link.opening = false
      core.counters.streams.outboundOpenFailures++
      const dropped = link.queue.clear()
      core.counters.droppedOutbound.unreachable += dropped
      core.logLimiter.log(
        'debug',
        `${link.peer}:open`,
        { peer: link.peer, failures: link.failures, dropped, err: errorMessage(err) },
        'raft transport: could not open a stream'
      )
      return
    }
    link.opening = false
    if (!core.running) {
      stream.abort(new Error('transport stopped'))
      return
    }
    core.counters.streams.outboundOpened++
    const session: OutboundSession = { stream, openedAtMs: performance.now(), wake: null, closed: false, writer: null }
    link.session = session
    stream.addEventListener(
      'close',
      () => {
        this.onSessionClosed(link, session)
      },
      { once: true }
    )
    const duplex = messageStreamToDuplex(stream)
    void discard(duplex.source)
    session.writer = pipe(this.batches(link, session), duplex.sink)
      .catch((err: unknown) => {
        if (core.running) {
          core.logLimiter.log(
            'debug',
            `${link.peer}:write`,
            { peer: link.peer, err: errorMessage(err) },
            'raft transport: stream write failed'
          )
        }
        stream.abort(err instanceof Error ? err : new Error(String(err)))
      })
      .finally(() => {
        this.onSessionClosed(link, session)
      })
  }

  /** The writer loop: yields coalesced, length-prefixed frames while the session lives. */
  private async *batches(link: Link, session: OutboundSession): AsyncGenerator<Uint8Array, void, undefined> {
    const core = this.core
    const { maxBatchBytes, maxMessageBytes } = core.limits
    const q = link.queue
    while (true) {
      if (session.closed || !core.running || session.stream.writeStatus !== 'writable') return
      if (q.length === 0) {
        await new Promise<void>((resolve) => {
          session.wake = resolve
        })
        session.wake = null
        // Let whatever else is sent in this turn of the event loop (the rest of a Ready, the answers
        // to every frame of one socket read) join the batch: one write instead of one per message.
        await new Promise<void>((resolve) => {
          setImmediate(resolve)
        })
        continue
      }
      const frames: Uint8Array[] = []
      let bytes = 0
      for (let f = q.peek(); f !== undefined; f = q.peek()) {
        if (frames.length > 0 && bytes + f.bytes.length > maxBatchBytes) break
        q.shift()
        frames.push(f.bytes)
        bytes += f.bytes.length
        core.counters.sent[f.type]++
      }
      core.counters.sentBytes += bytes
      core.counters.sentWrites++
      // it-length-prefixed yields a length prefix and the frame, twice per frame. Small frames are
      // joined into one write so that the muxer and the encryption handle one chunk, not two per frame.
      const parts = [...lp.encode(frames, { maxDataLength: maxMessageBytes })]
      if (bytes >= maxBatchBytes) {
        yield* parts
      } else {
        yield concatBytes(...parts)
      }
    }
  }

  private onSessionClosed(link: Link, session: OutboundSession): void {
    if (session.closed) return
    session.closed = true
    session.wake?.()
    if (link.session !== session) return
    link.session = null
    if (performance.now() - session.openedAtMs >= this.core.timing.healthyStreamMs) {
      link.failures = 0
      link.nextOpenAtMs = 0
    }
    if (!this.core.running || link.queue.length === 0) return
    if (performance.now() >= link.nextOpenAtMs) {
      void this.open(link)
    } else {
      this.core.counters.droppedOutbound.unreachable += link.queue.clear()
    }
  }

  private async closeSession(session: OutboundSession): Promise<void> {
    const stream = session.stream
    const timeout = AbortSignal.timeout(this.core.timing.closeTimeoutMs)
    const aborted = new Promise<void>((resolve) => {
      timeout.addEventListener(
        'abort',
        () => {
          resolve()
        },
        { once: true }
      )
    })
    await Promise.race([session.writer ?? Promise.resolve(), aborted])
    if (stream.writeStatus !== 'closed') {
      await stream.close({ signal: timeout }).catch(() => {
        stream.abort(new Error('transport stopped'))
      })
    }
    if (timeout.aborted) stream.abort(new Error('transport stopped'))
  }

  // ---------------------------------------------------------------------------------------------
  // Inbound

  onStream(stream: Stream, connection: Connection): void {
    const core = this.core
    const peer = core.acceptInbound(stream, connection)
    if (peer === null) return
    core.counters.streams.inboundAccepted++
    // A peer has one raft stream to us: a newer one means it gave the old one up.
    const previous = this.inbound.get(peer)
    this.inbound.set(peer, stream)
    previous?.abort(new Error('replaced by a newer stream'))
    const duplex = messageStreamToDuplex(stream)
    let invalid = 0
    pipe(
      duplex.source,
      (source) => lp.decode(source, { maxDataLength: core.limits.maxMessageBytes }),
      async (frames) => {
        for await (const frame of frames) {
          if (this.receiveFrame(peer, frame.subarray())) continue
          if (++invalid >= core.limits.maxInvalidFramesPerStream) {
            core.counters.streams.inboundReset++
            core.logLimiter.log(
              'warn',
              `${peer}:reset`,
              { peer, invalid },
              'raft transport: resetting a stream that sent too many invalid frames'
            )
            stream.abort(new Error('too many invalid frames'))
            return
          }
        }
      }
    )
      .catch((err: unknown) => {
        if (
          (err as { code?: string } | null)?.code === 'ERR_MSG_DATA_TOO_LONG' ||
          (err as { code?: string } | null)?.code === 'ERR_MSG_LENGTH_TOO_LONG'
        ) {
          core.counters.streams.inboundReset++
          core.dropIn('frame-too-large', peer, { limit: core.limits.maxMessageBytes })
          stream.abort(new Error('frame too large'))
        } else if (core.running) {
          core.logLimiter.log(
            'debug',
            `${peer}:read`,
            { peer, err: errorMessage(err) },
            'raft transport: inbound stream ended with an error'
          )
        }
      })
      .finally(() => {
        if (this.inbound.get(peer) === stream) this.inbound.delete(peer)
        // We never write on an inbound stream: closing our end completes the remote's close.
        if (stream.status === 'open')
          stream.close().catch(() => {
            stream.abort(new Error('close failed'))
          })
      })
  }

  /** Handles one frame of the raft stream; false if it was invalid (counts towards a reset). */
  private receiveFrame(peer: string, bytes: Uint8Array): boolean {
    const core = this.core
    core.counters.receivedBytes += bytes.length
    let m: Message
    try {
      m = decodeMessage(bytes, core.limits)
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err
      core.dropIn('malformed', peer, { err: err.message, bytes: bytes.length })
      return false
    }
    if (m.type === 'snap') {
      core.dropIn('malformed', peer, { err: 'snapshot on the raft stream' })
      return false
    }
    return core.deliver(peer, m)
  }
}
