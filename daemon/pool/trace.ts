import type { Logger } from '../host/log.js'

/**
 * One debug line per step of a round ("hop": a publish, a receipt, a read, a defense, the commit),
 * with the wall-clock time in milliseconds (`atMs`, sub-millisecond) so that the lines of every node
 * of one machine line up into the round's timeline (`npm run bench -- pool --trace`). Nothing is
 * formatted when the logger is above debug.
 */
export function traceHop(
  logger: Logger,
  round: Uint8Array | string,
  hop: string,
  fields: Record<string, unknown> = {}
): void {
  if (!logger.isLevelEnabled('debug')) return
  const id = typeof round === 'string' ? round.slice(0, 16) : Buffer.from(round.subarray(0, 8)).toString('hex')
  logger.debug(
    { trace: id, hop, atMs: Math.round((performance.timeOrigin + performance.now()) * 100) / 100, ...fields },
    'round hop'
  )
}
