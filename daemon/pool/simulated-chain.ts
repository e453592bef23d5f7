import { encodeBlocksEntry, MAX_BLOCKS_PER_ENTRY } from '../../board/entries.js'
import type { PoolBoard } from '../../board/pool-board.js'
import type { Logger } from '../host/log.js'
import { PoolError, type EntryProposer } from './propose.js'

/**
 * The simulated chain. Its height lives on the board (`blocks` entries), so every member agrees on
 * it and a member that was offline learns it by catching up the log. `chain mine N` proposes
 * blocks by hand; with `block-interval-s` > 0 the board leader mines one block per interval.
 */

const MINE_TIMEOUT_MS = 15_000

export interface ChainTickerOptions {
  intervalS: number
  isLeader: () => boolean
  entries: EntryProposer
  logger: Logger
}

/** On the board leader only, one block per interval (a new leader takes over the timer's work). */
export class ChainTicker {
  private timer: NodeJS.Timeout | undefined
  private mining = false

  constructor(private readonly options: ChainTickerOptions) {}

  start(): void {
    if (this.options.intervalS <= 0) return
    this.timer = setInterval(() => {
      this.tick()
    }, this.options.intervalS * 1000)
    this.timer.unref()
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }

  private tick(): void {
    // One block at a time: a slow commit must not pile up proposals.
    if (this.mining || !this.options.isLeader()) return
    this.mining = true
    this.options.entries
      .propose(encodeBlocksEntry(1), MINE_TIMEOUT_MS)
      .then((r) => {
        this.options.logger.debug({ height: r.height, index: r.index }, 'mined a block')
      })
      .catch((err: unknown) => {
        this.options.logger.warn({ err: (err as Error).message }, 'could not mine a block')
      })
      .finally(() => {
        this.mining = false
      })
  }
}

/** GET /v1/chain/status */
export interface ChainStatus {
  height: number
  blockIntervalS: number
  appliedIndex: number
}

export function chainStatus(poolBoard: PoolBoard, blockIntervalS: number): ChainStatus {
  return { height: poolBoard.chainHeight, blockIntervalS, appliedIndex: poolBoard.appliedIndex }
}

/** POST /v1/chain/mine */
export interface MineResult {
  height: number
  index: number
  blocks: number
}

/** Mines `blocks` blocks through the board; resolves with the height once applied here. */
export async function mine(entries: EntryProposer, blocks: unknown): Promise<MineResult> {
  if (typeof blocks !== 'number' || !Number.isSafeInteger(blocks) || blocks < 1 || blocks > MAX_BLOCKS_PER_ENTRY) {
    throw new PoolError(
      'bad-request',
      `blocks: expected a whole number from 1 to ${MAX_BLOCKS_PER_ENTRY}, got ${JSON.stringify(blocks)}`
    )
  }
  const result = await entries.propose(encodeBlocksEntry(blocks), MINE_TIMEOUT_MS)
  if (result.outcome !== 'accepted' || result.height === null)
    throw new PoolError('rejected', `the board refused the blocks: ${result.reason}`)
  return { height: result.height, index: result.index, blocks }
}
