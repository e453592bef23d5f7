import { once } from 'node:events'
import pino, { type Logger } from 'pino'
import type { LogLevel } from './config.js'

export type { Logger }

export interface NodeLogger {
  logger: Logger
  /** Reopens the log file (after logrotate moved it away); wired to SIGHUP. */
  reopen: () => void
  /** Writes out what is buffered; call before exit. */
  flush: () => void
}

/** JSON lines to the log file in the data directory and, unless `quiet`, to stdout. */
export async function createNodeLogger (options: { file: string, level: LogLevel, quiet: boolean, name: string }): Promise<NodeLogger> {
  // mkdir: the destination creates the file's directory (and again on reopen).
  const file = pino.destination({ dest: options.file, sync: false, mkdir: true })
  // Until the file is open, a flush at exit would throw: wait for it.
  await once(file, 'ready')
  const streams: pino.StreamEntry[] = [{ level: options.level, stream: file }]
  if (!options.quiet) streams.push({ level: options.level, stream: process.stdout })
  const logger = pino({ level: options.level, base: { node: options.name } }, pino.multistream(streams))
  return {
    logger,
    reopen: () => { file.reopen() },
    flush: () => { file.flushSync() }
  }
}

/**
 * At most one log line per key per interval, so a flood (a stranger, a broken peer) cannot flood
 * the log; each line counts, in `suppressed`, the lines of its key held back since the last one.
 * Bounded memory: past `maxKeys` keys it forgets them all.
 */
export class LogLimiter {
  private readonly last = new Map<string, { atMs: number, suppressed: number }>()
  constructor (private readonly logger: Logger, private readonly intervalMs: number, private readonly maxKeys = 1_000) {}

  log (level: 'error' | 'warn' | 'info' | 'debug', key: string, fields: Record<string, unknown>, msg: string): void {
    const nowMs = performance.now()
    const entry = this.last.get(key)
    if (entry !== undefined && nowMs - entry.atMs < this.intervalMs) {
      entry.suppressed++
      return
    }
    if (entry === undefined && this.last.size >= this.maxKeys) this.last.clear()
    this.last.set(key, { atMs: nowMs, suppressed: 0 })
    this.logger[level]({ ...fields, suppressed: entry?.suppressed ?? 0 }, msg)
  }
}
