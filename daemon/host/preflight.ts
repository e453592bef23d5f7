import { accessSync, constants, existsSync, mkdirSync } from 'node:fs'
import { describeFsError } from './fs-errors.js'
import { createServer } from 'node:net'
import { dirname, join } from 'node:path'
import { formatHostPort, type HostPort, type NodeConfig } from './config.js'
import type { DataDir, NodeKeys } from './datadir.js'
import { EXIT, UserError } from './errors.js'
import { memberLine } from './member-line.js'
import { isAlive } from './wait.js'

/**
 * What `poolboard start` checks before it opens anything, so that each mistake people make with a
 * data directory ends in one line naming the file, key or port and what to do (docs/operations.md),
 * not in a stack from deep inside libp2p, pino or LevelDB.
 */
export async function preflight(dir: DataDir, config: NodeConfig, keys: NodeKeys): Promise<void> {
  requireMembers(dir, config, keys)
  requireWritableLogs(dir.logFile)
  requireDatabase(dir.databasePath)
  // A node already running on this directory holds its ports: say that, not "port in use".
  const running = (): void => {
    const pid = dir.readPid()
    if (pid !== undefined && isAlive(pid))
      throw new UserError(
        `another poolboard node is already running on ${dir.path} (pid ${pid})`,
        EXIT.error,
        'already-running'
      )
  }
  await requireFreePort(config.listen, 'listen', 'the libp2p listen address', running)
  await requireFreePort(config.api, 'api', 'the admin API address', running)
}

/**
 * A node started with no member list builds a board whose only voter is itself, and keeps it: the
 * members added later can never join that board. So the first start needs the whole list.
 */
export function requireMembers(dir: DataDir, config: NodeConfig, keys: NodeKeys): void {
  const own = memberLine(config, keys.peerId)
  if (config.members.length === 0) {
    throw new UserError(
      `${dir.configFile} lists no members; a node started alone makes a board that no other member can join. ` +
        `Add one member= line per member, this node included (its line, from poolboard member-line: ${own}), then start again`,
      EXIT.usage,
      'no-members'
    )
  }
  if (!config.members.some((m) => m.peerId === keys.peerId)) {
    throw new UserError(
      `${dir.configFile}: the member list does not include this node (peer id ${keys.peerId}); add its line: ${own}`,
      EXIT.usage,
      'not-listed'
    )
  }
}

function requireWritableLogs(file: string): void {
  const logs = dirname(file)
  try {
    if (!existsSync(logs)) mkdirSync(logs, { recursive: true, mode: 0o700 })
    accessSync(logs, constants.W_OK | constants.X_OK)
    if (existsSync(file)) accessSync(file, constants.W_OK)
  } catch (err) {
    throw new UserError(`cannot write the log file ${file}: ${describeFsError(err)}`, EXIT.error, 'log-unwritable')
  }
}

function requireDatabase(path: string): void {
  if (!existsSync(path))
    throw new UserError(
      `no database at ${path}: this data directory was not made by poolboard init (or its db/ was removed)`,
      EXIT.error,
      'no-database'
    )
  const current = join(path, 'CURRENT')
  if (!existsSync(current)) {
    throw new UserError(
      `the database ${path} is damaged: its ${current} file is missing (LevelDB's pointer to its manifest); restore db/ from a backup, or re-create this node and let it catch up`,
      EXIT.error,
      'database-damaged'
    )
  }
  try {
    accessSync(path, constants.R_OK | constants.W_OK | constants.X_OK)
    accessSync(current, constants.R_OK)
  } catch (err) {
    throw new UserError(`cannot open the database ${path}: ${describeFsError(err)}`, EXIT.error, 'database-unreadable')
  }
}

/** Binds the port for a moment; a port in use is named with the setting that chose it. */
async function requireFreePort(at: HostPort, key: string, what: string, beforeInUse: () => void): Promise<void> {
  if (at.port === 0) return
  const problem = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
    const server = createServer()
    server.once('error', (err) => {
      resolve(err)
    })
    server.listen({ host: at.host, port: at.port, exclusive: true }, () => {
      server.close(() => {
        resolve(null)
      })
    })
  })
  if (problem === null) return
  const where = formatHostPort(at)
  if (problem.code === 'EADDRINUSE') beforeInUse()
  if (problem.code === 'EADDRINUSE')
    throw new UserError(
      `${what} ${where} is already in use (another poolboard node, or another program); choose another port with ${key}= in poolboard.conf or --${key}`,
      EXIT.usage,
      'port-in-use'
    )
  if (problem.code === 'EADDRNOTAVAIL')
    throw new UserError(
      `${what} ${where} is not an address of this machine; fix ${key}= in poolboard.conf or --${key}`,
      EXIT.usage,
      'bad-address'
    )
  if (problem.code === 'EACCES')
    throw new UserError(
      `${what} ${where}: permission denied (ports below 1024 need privileges); fix ${key}= in poolboard.conf or --${key}`,
      EXIT.usage,
      'port-denied'
    )
  throw new UserError(`cannot listen on ${what} ${where}: ${problem.message}`, EXIT.error, 'listen-failed')
}
