import { messageStreamToDuplex } from '@libp2p/utils'
import * as lp from 'it-length-prefixed'
import { pipe } from 'it-pipe'
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import type { Message, SnapMessage } from '../../../board/raft/types.js'
import { encodeMessage, decodeMessage, maxSnapMessageBytes } from '../../../board/wire.js'
import { Writer, decodeAll } from '../../../protocol/codec.js'
import { errorMessage } from '../../host/errors.js'
import { discard, type InboundDropReason, type TransportCore } from './core.js'

/**
 * One snapshot per stream: a header frame (version u8, total length varint), then the encoded
 * `snap` message in chunks; the sender closes its end after the last chunk.
 */
export const SNAPSHOT_PROTOCOL = '/poolboard/snapshot/1.0.0'
const SNAPSHOT_STREAM_VERSION = 1

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

/** A snapshot stream broke its framing. */
class SnapshotStreamError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'SnapshotStreamError'
  }
}

/**
 * The snapshot protocol: snapshots go on their own streams, in chunks, so they never hold up
 * heartbeats. One transfer per peer and direction at a time, a bound on inbound transfers over all
 * peers, and one timer that aborts any transfer making no progress within snapshotStallTimeoutMs.
 */
export class SnapshotStreams {
  private readonly outbound = new Map<string, OutboundSnapshot>()
  private readonly inbound = new Map<string, InboundSnapshot>()
  private readonly snapLimitBytes: number
  private stallTimer: NodeJS.Timeout | undefined

  constructor(private readonly core: TransportCore) {
    this.snapLimitBytes = maxSnapMessageBytes(core.limits)
  }

  /** Starts the stall watch (the stream handler itself is registered by the transport). */
  start(): void {
    const checkEveryMs = Math.max(10, Math.min(1_000, this.core.timing.snapshotStallTimeoutMs / 4))
    this.stallTimer = setInterval(() => {
      this.checkStalls()
    }, checkEveryMs)
    this.stallTimer.unref()
  }

  /** Ends the stall watch (first thing on stop, before the handlers go). */
  stopStallWatch(): void {
    if (this.stallTimer !== undefined) clearInterval(this.stallTimer)
  }

  /** Aborts every transfer in progress. */
  stop(): void {
    for (const t of this.outbound.values()) {
      t.abort.abort(new Error('transport stopped'))
      t.stream?.abort(new Error('transport stopped'))
    }
    for (const t of this.inbound.values()) t.stream.abort(new Error('transport stopped'))
  }

  /** Resets the inbound bookkeeping once every stream has ended. */
  clear(): void {
    this.inbound.clear()
  }

  peers(): string[] {
    return [...this.outbound.keys(), ...this.inbound.keys()]
  }

  outboundProgress(peer: string): { sentBytes: number; totalBytes: number } | null {
    const t = this.outbound.get(peer)
    return t === undefined ? null : { sentBytes: t.sentBytes, totalBytes: t.bytes.length }
  }

  inboundProgress(peer: string): { receivedBytes: number; totalBytes: number } | null {
    const t = this.inbound.get(peer)
    return t === undefined ? null : { receivedBytes: t.receivedBytes, totalBytes: t.totalBytes }
  }

  // ---------------------------------------------------------------------------------------------
  // Outbound

  send(peer: string, peerId: PeerId, m: SnapMessage): void {
    const core = this.core
    if (this.outbound.has(peer)) {
      core.dropOut('snapshot-busy', peer, { index: m.snapshot.meta.index })
      return
    }
    let bytes: Uint8Array
    try {
      bytes = encodeMessage(m, core.limits)
    } catch (err) {
      core.dropOut('encode-error', peer, { type: m.type, err: errorMessage(err) })
      return
    }
    const transfer: OutboundSnapshot = {
      bytes,
      sentBytes: 0,
      lastProgressMs: performance.now(),
      stalled: false,
      stream: null,
      abort: new AbortController()
    }
    this.outbound.set(peer, transfer)
    void this.runOutbound(peer, peerId, transfer).finally(() => {
      if (this.outbound.get(peer) === transfer) this.outbound.delete(peer)
    })
  }

  private async runOutbound(peer: string, peerId: PeerId, t: OutboundSnapshot): Promise<void> {
    const core = this.core
    try {
      const signal = AbortSignal.any([t.abort.signal, AbortSignal.timeout(core.timing.openTimeoutMs)])
      const stream = await core.libp2p.dialProtocol(peerId, SNAPSHOT_PROTOCOL, { signal })
      t.stream = stream
      if (!core.running || t.abort.signal.aborted) throw new Error('snapshot transfer aborted')
      t.lastProgressMs = performance.now()
      const duplex = messageStreamToDuplex(stream)
      void discard(duplex.source)
      await pipe(
        this.chunks(t),
        (source) => lp.encode(source, { maxDataLength: core.limits.snapshotChunkBytes }),
        duplex.sink
      )
      if (t.stalled) throw new Error('snapshot transfer stalled')
      core.counters.sent.snap++
      core.counters.sentBytes += t.bytes.length
      core.logger.debug({ peer, bytes: t.bytes.length }, 'raft transport: snapshot sent')
    } catch (err) {
      if (!core.running) {
        core.counters.droppedOutbound.stopped++
      } else {
        core.dropOut(t.stalled ? 'snapshot-stalled' : 'snapshot-failed', peer, {
          bytes: t.bytes.length,
          sentBytes: t.sentBytes,
          err: errorMessage(err)
        })
      }
      t.stream?.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }

  private *chunks(t: OutboundSnapshot): Generator<Uint8Array, void, undefined> {
    yield new Writer(16).u8(SNAPSHOT_STREAM_VERSION).varint(t.bytes.length).finish()
    const chunk = this.core.limits.snapshotChunkBytes
    for (let off = 0; off < t.bytes.length; off += chunk) {
      // Pulled by the sink once the previous chunk is written: that is progress.
      t.lastProgressMs = performance.now()
      t.sentBytes = off
      yield t.bytes.subarray(off, Math.min(off + chunk, t.bytes.length))
    }
    t.sentBytes = t.bytes.length
  }

  // ---------------------------------------------------------------------------------------------
  // Inbound

  onStream(stream: Stream, connection: Connection): void {
    const core = this.core
    const peer = core.acceptInbound(stream, connection)
    if (peer === null) return
    // A sender runs one transfer to us at a time: a new stream means it gave the old one up.
    const previous = this.inbound.get(peer)
    if (previous === undefined && this.inbound.size >= core.limits.maxConcurrentInboundSnapshots) {
      core.dropIn('snapshot-busy', peer, { inProgress: this.inbound.size })
      stream.abort(new Error('too many snapshot transfers in progress'))
      return
    }
    const t: InboundSnapshot = {
      stream,
      buffer: null,
      receivedBytes: 0,
      totalBytes: 0,
      delivered: false,
      lastProgressMs: performance.now(),
      stalled: false,
      replaced: false
    }
    this.inbound.set(peer, t)
    if (previous !== undefined) {
      previous.replaced = true
      previous.stream.abort(new Error('replaced by a newer snapshot transfer'))
    }
    const duplex = messageStreamToDuplex(stream)
    pipe(
      duplex.source,
      (source) => lp.decode(source, { maxDataLength: core.limits.snapshotChunkBytes }),
      async (frames) => {
        for await (const frame of frames) this.onFrame(peer, t, frame)
        if (!t.delivered)
          throw new SnapshotStreamError(`stream ended after ${t.receivedBytes} of ${t.totalBytes} bytes`)
      }
    )
      .catch((err: unknown) => {
        if (!core.running) return
        const reason: InboundDropReason = t.replaced
          ? 'snapshot-replaced'
          : t.stalled
            ? 'snapshot-stalled'
            : err instanceof SnapshotStreamError
              ? 'snapshot-malformed'
              : 'snapshot-aborted'
        core.dropIn(reason, peer, { receivedBytes: t.receivedBytes, totalBytes: t.totalBytes, err: errorMessage(err) })
        stream.abort(err instanceof Error ? err : new Error(String(err)))
      })
      .finally(() => {
        if (this.inbound.get(peer) === t) this.inbound.delete(peer)
        if (stream.status === 'open')
          stream.close().catch(() => {
            stream.abort(new Error('close failed'))
          })
      })
  }

  private onFrame(
    peer: string,
    t: InboundSnapshot,
    frame: Iterable<Uint8Array> & { byteLength: number; subarray: () => Uint8Array }
  ): void {
    const core = this.core
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
    core.counters.receivedBytes += frame.byteLength
    if (t.receivedBytes < t.totalBytes) return
    let m: Message
    try {
      // The buffer is ours alone: the snapshot's data may be a view into it rather than a copy.
      m = decodeMessage(t.buffer, core.limits, { shareInput: true })
    } catch (err) {
      throw new SnapshotStreamError(errorMessage(err))
    }
    t.buffer = null
    t.delivered = true
    if (m.type !== 'snap') throw new SnapshotStreamError(`a ${m.type} message on the snapshot stream`)
    core.deliver(peer, m)
  }

  private checkStalls(): void {
    const nowMs = performance.now()
    const limitMs = this.core.timing.snapshotStallTimeoutMs
    for (const t of this.outbound.values()) {
      if (nowMs - t.lastProgressMs <= limitMs) continue
      t.stalled = true
      t.abort.abort(new Error('snapshot transfer stalled'))
      t.stream?.abort(new Error('snapshot transfer stalled'))
    }
    for (const t of this.inbound.values()) {
      if (nowMs - t.lastProgressMs <= limitMs) continue
      t.stalled = true
      t.stream.abort(new Error('snapshot transfer stalled'))
    }
  }
}
