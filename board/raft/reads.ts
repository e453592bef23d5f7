// Read-index requests waiting for the leader to confirm, with a heartbeat quorum, that it was still
// the leader when they arrived (Raft thesis §6.4).

import { toHex } from '../../protocol/bytes.js'
import type { NodeId } from './types.js'

export interface ReadRequest {
  /** The leader's commit index when the request arrived. */
  readonly index: number
  readonly context: Uint8Array
  /** Who asked: null for this node, else the follower that forwarded it. */
  readonly from: NodeId | null
  readonly acks: Set<NodeId>
}

export class ReadQueue {
  private readonly byKey = new Map<string, ReadRequest>()
  private readonly order: string[] = []

  get size(): number {
    return this.order.length
  }

  has(context: Uint8Array): boolean {
    return this.byKey.has(toHex(context))
  }

  /** Queues a request; a duplicate context is ignored (returns false). */
  add(index: number, context: Uint8Array, from: NodeId | null): boolean {
    const key = toHex(context)
    if (this.byKey.has(key)) return false
    this.byKey.set(key, { index, context, from, acks: new Set() })
    this.order.push(key)
    return true
  }

  /** Records that `from` acknowledged the heartbeat carrying `context`; returns the ack count, or 0 if unknown. */
  recordAck(from: NodeId, context: Uint8Array): number {
    const req = this.byKey.get(toHex(context))
    if (req === undefined) return 0
    req.acks.add(from)
    return req.acks.size
  }

  /**
   * Releases the request with `context` and every request queued before it: an ack to a heartbeat
   * sent after the later request arrived also confirms leadership for the earlier ones.
   */
  release(context: Uint8Array): ReadRequest[] {
    const key = toHex(context)
    const at = this.order.indexOf(key)
    if (at < 0) return []
    const keys = this.order.splice(0, at + 1)
    const out: ReadRequest[] = []
    for (const k of keys) {
      out.push(this.byKey.get(k)!)
      this.byKey.delete(k)
    }
    return out
  }

  /** Context of the newest pending request (heartbeats carry it), or null. */
  lastContext(): Uint8Array | null {
    if (this.order.length === 0) return null
    return this.byKey.get(this.order[this.order.length - 1]!)!.context
  }
}
