import type { Logger } from '../host/log.js'

// The detections of the defenses: which defense, what it saw, when (GET /v1/defense).

export type DefenseName = 'quorum-read' | 'hash-chain' | 'gossip-check' | 'evidence'

export interface DefenseAlarm {
  /** When, in ms since the epoch. */
  atMs: number
  defense: DefenseName
  /** detected: this node saw it itself; learned: another member's proof told it; refused: it stopped this node signing. */
  how: 'detected' | 'learned' | 'refused'
  message: string
  /** Names of the members it points at (who disagrees, who reported, who equivocated). */
  members: string[]
  index: number | null
  statementId: string | null
}

const MAX_ALARMS_KEPT = 256

/** The detections of one node, oldest first, each recorded once. */
export class DefenseLog {
  private readonly alarms: DefenseAlarm[] = []
  private readonly seen = new Set<string>()

  constructor(private readonly logger: Logger) {}

  /** Records `alarm` unless one with the same `key` was recorded; returns whether it was new. */
  record(key: string, alarm: Omit<DefenseAlarm, 'atMs'>): boolean {
    if (this.seen.has(key)) return false
    if (this.seen.size >= MAX_ALARMS_KEPT * 4) this.seen.clear()
    this.seen.add(key)
    this.alarms.push({ atMs: Date.now(), ...alarm })
    if (this.alarms.length > MAX_ALARMS_KEPT) this.alarms.shift()
    this.logger.warn(
      {
        defense: alarm.defense,
        how: alarm.how,
        members: alarm.members,
        index: alarm.index,
        statement: alarm.statementId
      },
      `defense: ${alarm.message}`
    )
    return true
  }

  list(): DefenseAlarm[] {
    return [...this.alarms]
  }

  /** How many detections are kept (at most MAX_ALARMS_KEPT). */
  get count(): number {
    return this.alarms.length
  }
}
