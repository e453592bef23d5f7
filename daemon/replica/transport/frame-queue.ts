import type { MessageType } from '../../../board/raft/types.js'

/** Elections and leadership transfer: never evicted from a full queue for a newer message. */
export const CRITICAL_TYPES: ReadonlySet<MessageType> = new Set<MessageType>([
  'vote',
  'preVote',
  'voteResp',
  'preVoteResp',
  'timeoutNow',
  'transferLeader'
])

/** One encoded Raft message waiting for its peer's stream. */
export interface QueuedFrame {
  readonly bytes: Uint8Array
  readonly type: MessageType
  readonly critical: boolean
}

/** A FIFO of encoded frames with a byte count; O(1) at both ends, O(n) eviction from the middle. */
export class FrameQueue {
  private items: Array<QueuedFrame | undefined> = []
  private head = 0
  bytes = 0

  get length(): number {
    return this.items.length - this.head
  }

  push(f: QueuedFrame): void {
    this.items.push(f)
    this.bytes += f.bytes.length
  }

  peek(): QueuedFrame | undefined {
    return this.items[this.head]
  }

  shift(): QueuedFrame | undefined {
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
  removeOldest(pred: (f: QueuedFrame) => boolean): QueuedFrame | undefined {
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

  clear(): number {
    const n = this.length
    this.items = []
    this.head = 0
    this.bytes = 0
    return n
  }
}
