import { once } from 'node:events'
import pino, { type Logger } from 'pino'
import type { LogCategory, LogLevel } from './config.js'

export type { Logger }

export interface NodeLogger {
  logger: Logger
  /** Reopens the log file (after logrotate moved it away); wired to SIGHUP. */
  reopen: () => void
  /** Writes out what is buffered; call before exit. */
  flush: () => void
}

export { LOG_CATEGORIES, type LogCategory } from './config.js'

export interface NodeLoggerOptions {
  file: string
  level: LogLevel
  /** Categories logged at debug level even when `level` is higher. */
  debug: readonly LogCategory[]
  /** No terminal output: the log file only. */
  quiet: boolean
  /** Terminal output as JSON lines (for log shippers) rather than one readable line per record. */
  json: boolean
  name: string
  /** Member names by peer id: log fields that hold a member's peer id show its name instead. */
  names: ReadonlyMap<string, string>
}

export interface NodeLogger {
  logger: Logger
  /** The logger of one part of the node (its lines carry `cat`), at debug level if that category is on. */
  category: (cat: LogCategory) => Logger
  /** Reopens the log file (after logrotate moved it away); wired to SIGHUP. */
  reopen: () => void
  /** Writes out what is buffered; call before exit. */
  flush: () => void
}

/** Fields that name a peer: a member's peer id in them becomes its name. */
const PEER_FIELDS = new Set(['peer', 'from', 'to', 'leader', 'member', 'voter', 'sender', 'target'])

/**
 * JSON lines to the log file in the data directory (always: that is what tools read) and, unless
 * `quiet`, to stdout: one readable line per record on a terminal, JSON lines otherwise.
 */
export async function createNodeLogger(options: NodeLoggerOptions): Promise<NodeLogger> {
  // mkdir: the destination creates the file's directory (and again on reopen).
  const file = pino.destination({ dest: options.file, sync: false, mkdir: true })
  // Until the file is open, a flush at exit would throw: wait for it.
  await once(file, 'ready')
  // The streams take everything; each logger's own level decides (a category may be at debug).
  const streams: pino.StreamEntry[] = [{ level: 'trace', stream: file }]
  if (!options.quiet) {
    streams.push({
      level: 'trace',
      stream: options.json
        ? process.stdout
        : {
            write: (line: string) => {
              process.stdout.write(formatLogLine(line.trimEnd()) + '\n')
            }
          }
    })
  }
  const named = (v: unknown): unknown =>
    typeof v === 'string' ? (options.names.get(v) ?? v) : Array.isArray(v) ? v.map(named) : v
  const logger = pino(
    {
      level: options.level,
      base: { node: options.name },
      formatters: {
        log: (record) => {
          let out: Record<string, unknown> | undefined
          for (const [k, v] of Object.entries(record)) {
            if (!PEER_FIELDS.has(k)) continue
            const n = named(v)
            if (n !== v) {
              out ??= { ...record }
              out[k] = n
            }
          }
          return out ?? record
        }
      }
    },
    pino.multistream(streams)
  )
  const debugOn = new Set(options.debug)
  const levelOf = (cat: LogCategory): string =>
    debugOn.has(cat) && pino.levels.values[options.level] > pino.levels.values.debug ? 'debug' : options.level
  return {
    logger,
    category: (cat) => logger.child({ cat }, { level: levelOf(cat) }),
    reopen: () => {
      file.reopen()
    },
    flush: () => {
      file.flushSync()
    }
  }
}

const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL'
}

/** One pino JSON line as `time LEVEL [cat] message key=value ...`, for people. */
export function formatLogLine(line: string): string {
  let record: Record<string, unknown>
  try {
    record = JSON.parse(line) as Record<string, unknown>
  } catch {
    return line
  }
  const { time, level, msg, cat, pid: _pid, hostname: _hostname, node: _node, ...rest } = record
  const when = typeof time === 'number' ? new Date(time).toISOString().slice(11, 23) : ''
  const fields = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ')
  return `${when} ${(LEVEL_NAMES[level as number] ?? String(level)).padEnd(5)} ${typeof cat === 'string' ? `[${cat}] ` : ''}${String(msg ?? '')}${fields === '' ? '' : ' ' + fields}`
}

/**
 * At most one log line per key per interval, so a flood (a stranger, a broken peer) cannot flood
 * the log; each line counts, in `suppressed`, the lines of its key held back since the last one.
 * Bounded memory: past `maxKeys` keys it forgets them all.
 */
export class LogLimiter {
  private readonly last = new Map<string, { atMs: number; suppressed: number }>()
  constructor(
    private readonly logger: Logger,
    private readonly intervalMs: number,
    private readonly maxKeys = 1_000
  ) {}

  log(level: 'error' | 'warn' | 'info' | 'debug', key: string, fields: Record<string, unknown>, msg: string): void {
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
