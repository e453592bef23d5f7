import { once } from 'node:events'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
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
  mkdirSync(dirname(options.file), { recursive: true })
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
