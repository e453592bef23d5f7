import type { NodeId } from '../../board/raft/index.js'

export interface QuarantineLimits {
  /** Refused frames a member may send per window before its frames are throttled. */
  throttleAfterRefusals: number
  /** While throttled, at most this many of its frames per window reach the core. */
  throttledFramesPerWindow: number
  /** Refused frames per window after which all of a member's frames are dropped for `quarantineMs`. */
  quarantineAfterRefusals: number
  windowMs: number
  quarantineMs: number
}

export const DEFAULT_QUARANTINE_LIMITS: QuarantineLimits = Object.freeze({
  throttleAfterRefusals: 10,
  throttledFramesPerWindow: 20,
  quarantineAfterRefusals: 50,
  windowMs: 10_000,
  quarantineMs: 60_000
})

const MAX_TRACKED_MEMBERS = 1_024

interface MemberRecord {
  windowStartMs: number
  refusals: number
  frames: number
  quarantinedUntilMs: number
}

export type Verdict = 'pass' | 'throttled' | 'quarantined'

/**
 * A member whose frames keep being refused (an honest member's never are: see docs/raft.md) costs
 * this node work for nothing, and may be trying to stop the board. Past a few refusals its frames
 * are throttled; past many, all of them are dropped for a while, as if it were disconnected.
 */
export class Quarantine {
  private readonly members = new Map<NodeId, MemberRecord>()

  constructor(
    private readonly limits: QuarantineLimits = DEFAULT_QUARANTINE_LIMITS,
    private readonly nowMs: () => number = () => performance.now()
  ) {}

  /** Should a frame from `from` reach the core? */
  admit(from: NodeId): Verdict {
    const r = this.members.get(from)
    if (r === undefined) return 'pass'
    const now = this.roll(r)
    if (r.quarantinedUntilMs > now) return 'quarantined'
    if (r.refusals < this.limits.throttleAfterRefusals) return 'pass'
    return ++r.frames <= this.limits.throttledFramesPerWindow ? 'pass' : 'throttled'
  }

  /** Counts a refused frame; returns the new state when it changed. */
  refused(from: NodeId): 'throttled' | 'quarantined' | null {
    let r = this.members.get(from)
    if (r === undefined) {
      if (this.members.size >= MAX_TRACKED_MEMBERS) this.members.clear()
      r = { windowStartMs: this.nowMs(), refusals: 0, frames: 0, quarantinedUntilMs: 0 }
      this.members.set(from, r)
    }
    const now = this.roll(r)
    if (r.quarantinedUntilMs > now) return null
    r.refusals++
    if (r.refusals === this.limits.quarantineAfterRefusals) {
      r.quarantinedUntilMs = now + this.limits.quarantineMs
      return 'quarantined'
    }
    return r.refusals === this.limits.throttleAfterRefusals ? 'throttled' : null
  }

  /** Members whose frames are dropped now. */
  quarantined(): NodeId[] {
    const now = this.nowMs()
    return [...this.members].filter(([, r]) => r.quarantinedUntilMs > now).map(([id]) => id)
  }

  private roll(r: MemberRecord): number {
    const now = this.nowMs()
    if (now - r.windowStartMs >= this.limits.windowMs) {
      r.windowStartMs = now
      r.refusals = 0
      r.frames = 0
    }
    return now
  }
}
