// The Raft transport: carries Raft messages between the pool's member nodes over libp2p. Two
// stream protocols (message-stream.ts for every message but snapshots, snapshot-stream.ts for
// snapshots), one bounded frame queue per peer (frame-queue.ts), and the checks and counters both
// share (core.ts). The Raft driver (../board.ts) sees only the RaftTransport below.
import assert from 'node:assert/strict'
import type { Message } from '../../../board/raft/types.js'
import { errorMessage } from '../../host/errors.js'
import { TransportCore, type MessageHandler, type RaftTransportOptions, type RaftTransportStats } from './core.js'
import { MessageStreams, RAFT_PROTOCOL } from './message-stream.js'
import { SNAPSHOT_PROTOCOL, SnapshotStreams } from './snapshot-stream.js'

export {
  DEFAULT_TRANSPORT_LIMITS,
  DEFAULT_TRANSPORT_TIMING,
  INBOUND_DROP_REASONS,
  OUTBOUND_DROP_REASONS,
  type InboundDropReason,
  type MessageHandler,
  type OutboundDropReason,
  type PeerTransportStats,
  type RaftTransportOptions,
  type RaftTransportStats,
  type TransportLibp2p,
  type TransportLimits,
  type TransportTiming
} from './core.js'
export { RAFT_PROTOCOL } from './message-stream.js'
export { SNAPSHOT_PROTOCOL } from './snapshot-stream.js'

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
  private readonly core: TransportCore
  private readonly messages: MessageStreams
  private readonly snapshots: SnapshotStreams
  private stopping: Promise<void> | null = null

  constructor(options: RaftTransportOptions) {
    this.core = new TransportCore(options)
    this.messages = new MessageStreams(this.core)
    this.snapshots = new SnapshotStreams(this.core)
  }

  /** Registers the stream handlers. Messages sent before start() are dropped. */
  async start(): Promise<void> {
    const core = this.core
    assert.equal(core.state, 'new', 'RaftTransport.start() called twice')
    core.state = 'running'
    await core.libp2p.handle(
      RAFT_PROTOCOL,
      (stream, connection) => {
        this.messages.onStream(stream, connection)
      },
      { maxInboundStreams: 8, maxOutboundStreams: 8 }
    )
    await core.libp2p.handle(
      SNAPSHOT_PROTOCOL,
      (stream, connection) => {
        this.snapshots.onStream(stream, connection)
      },
      { maxInboundStreams: 4, maxOutboundStreams: 4 }
    )
    this.snapshots.start()
  }

  /**
   * Stops: unregisters the handlers, drops what is queued, closes the outbound streams (waiting at
   * most closeTimeoutMs for what is being written), resets inbound streams and snapshot transfers.
   */
  async stop(): Promise<void> {
    if (this.stopping === null) {
      if (this.core.state !== 'running') {
        this.core.state = 'stopped'
        return
      }
      this.stopping = this.shutDown()
    }
    await this.stopping
  }

  private async shutDown(): Promise<void> {
    const core = this.core
    core.state = 'stopping'
    this.snapshots.stopStallWatch()
    await core.libp2p.unhandle([RAFT_PROTOCOL, SNAPSHOT_PROTOCOL]).catch((err: unknown) => {
      core.logger.debug({ err: errorMessage(err) }, 'raft transport: unhandle failed')
    })
    this.snapshots.stop()
    await this.messages.stop()
    this.snapshots.clear()
    core.state = 'stopped'
  }

  /** Sets the function that receives every valid message addressed to this node (replacing any previous one). */
  onMessage(handler: MessageHandler): void {
    this.core.handler = handler
  }

  /**
   * Queues a message for its `to` peer and returns at once. Never throws for a message that
   * cannot be sent: it is dropped and counted (see stats().droppedOutbound).
   */
  send(message: Message): void {
    const core = this.core
    if (!core.running) {
      core.counters.droppedOutbound.stopped++
      return
    }
    const to = message.to
    if (message.from !== core.selfId || to === core.selfId || !core.isMember(to)) {
      core.dropOut('bad-address', to, { from: message.from, type: message.type })
      return
    }
    const link = this.messages.link(to)
    if (link === null) {
      core.dropOut('bad-address', to, { type: message.type, err: 'not a peer id' })
      return
    }
    if (message.type === 'snap') {
      this.snapshots.send(link.peer, link.peerId, message)
      return
    }
    this.messages.send(link, message)
  }

  stats(): RaftTransportStats {
    const c = this.core.counters
    const peers = new Set([...this.messages.peers(), ...this.snapshots.peers()])
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
        const link = this.messages.existingLink(peer)
        return {
          peer,
          queueMessages: link?.queue.length ?? 0,
          queueBytes: link?.queue.bytes ?? 0,
          streamOpen: link?.session != null,
          openFailures: link?.failures ?? 0,
          snapshotOut: this.snapshots.outboundProgress(peer),
          snapshotIn: this.snapshots.inboundProgress(peer),
          inboundStreamOpen: this.messages.hasInbound(peer)
        }
      })
    }
  }
}
