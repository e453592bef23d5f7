import type { ApplyResult, PoolBoard } from '../../board/pool-board.js'
import { BoardError, type BoardReplica } from '../replica/board.js'
import type { ProposalRouter } from '../replica/forward.js'
import type { AppliedEvents } from '../replica/pool-applier.js'

/** Something the pool or chain commands could not do; `code` is stable, the message names what was wrong. */
export class PoolError extends Error {
  constructor(
    readonly code: PoolErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {}
  ) {
    super(message)
    this.name = 'PoolError'
  }
}

export type PoolErrorCode =
  | 'bad-request'
  | 'unknown-member'
  | 'no-pool'
  | 'exists'
  | 'not-member'
  | 'frozen'
  | 'closed'
  | 'round-failed'
  | 'refused'
  | 'rejected'
  | 'timeout'
  | 'lab-only'
  | 'busy'
  | 'no-leader'
  | 'unreachable'

/** A linearizable read waits this long by default. */
export const READ_TIMEOUT_MS = 5_000
/** A proposed pool entry must be committed and applied on this node within this long. */
export const BOARD_TIMEOUT_MS = 15_000

/** A linearizable read: everything committed before now is applied on this node. */
export type BoardRead = (timeoutMs?: number) => Promise<void>

export function boardReader(board: Pick<BoardReplica, 'linearizableRead'>): BoardRead {
  return async (timeoutMs = READ_TIMEOUT_MS) => {
    try {
      await board.linearizableRead(timeoutMs)
    } catch (err) {
      throw new PoolError('timeout', `cannot read the board: ${(err as Error).message}`)
    }
  }
}

export interface EntryProposerOptions {
  /** Proposes through whichever node leads; resolves once committed. */
  router: Pick<ProposalRouter, 'propose'>
  poolBoard: PoolBoard
  /** What this node applies: a waiter is answered once its entry is applied here. */
  applied: AppliedEvents
}

/** Callers waiting for an index at most; each waits at most its own timeout. */
const MAX_WAITERS = 1_024

interface Waiter {
  index: number
  resolve: () => void
  reject: (err: Error) => void
  timer: NodeJS.Timeout
}

/**
 * Proposes board entries and answers with what applying them did on this node. A command reports
 * an entry's outcome only once this node has applied it, so what it prints is what this node's
 * `pool status` shows next.
 */
export class EntryProposer {
  private readonly waiters = new Set<Waiter>()

  constructor(private readonly options: EntryProposerOptions) {
    options.applied.subscribe(() => {
      this.applied()
    })
  }

  get poolBoard(): PoolBoard {
    return this.options.poolBoard
  }

  /** Proposes `data`, waits until this node applied it, and returns its result. */
  async propose(data: Uint8Array, timeoutMs: number): Promise<ApplyResult> {
    const deadlineMs = Date.now() + timeoutMs
    let index: number
    try {
      index = (await this.options.router.propose(data, timeoutMs)).index
    } catch (err) {
      if (err instanceof BoardError) {
        if (err.code === 'timeout')
          throw new PoolError(
            'timeout',
            `the board did not commit the entry within ${timeoutMs} ms (is a majority of the board's voters online?); it may still commit`
          )
        throw new PoolError(
          err.code === 'not-leader' ? 'no-leader' : 'rejected',
          `the board did not take the entry: ${err.message}`
        )
      }
      throw err
    }
    await this.waitApplied(index, Math.max(1, deadlineMs - Date.now()))
    const result = this.options.poolBoard.result(index)
    if (result === undefined)
      throw new PoolError('rejected', `entry ${index} was applied but its result is no longer kept`)
    return result
  }

  /** Resolves once this node has applied entry `index`. */
  async waitApplied(index: number, timeoutMs: number): Promise<void> {
    if (this.options.poolBoard.appliedIndex >= index) return
    if (this.waiters.size >= MAX_WAITERS)
      throw new PoolError('busy', `more than ${MAX_WAITERS} commands are waiting for the board`)
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        index,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter)
          reject(
            new PoolError(
              'timeout',
              `entry ${index} is committed but this node had not applied it within ${timeoutMs} ms`
            )
          )
        }, timeoutMs)
      }
      this.waiters.add(waiter)
    })
  }

  /** After every batch this node applies. */
  private applied(): void {
    const at = this.options.poolBoard.appliedIndex
    for (const w of this.waiters) {
      if (w.index > at) continue
      clearTimeout(w.timer)
      this.waiters.delete(w)
      w.resolve()
    }
  }

  stop(): void {
    for (const w of this.waiters) {
      clearTimeout(w.timer)
      w.reject(new PoolError('busy', 'the node is stopping'))
    }
    this.waiters.clear()
  }
}
