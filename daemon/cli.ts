#!/usr/bin/env node
import './host/polyfill.js'
import { Command, CommanderError, Option } from 'commander'
import { toHex } from '../protocol/bytes.js'
import { boardCommand } from './commands/board.js'
import { clusterCommand } from './commands/cluster.js'
import { completionCommand } from './commands/completion.js'
import { defenseCommand } from './commands/defense.js'
import { dashboardCommand } from './dashboard/command.js'
import { chainCommand, poolCommand } from './commands/pool.js'
import { labCommand } from './lab/campaign/cli.js'
import { applyOverrides, defaultConfig, formatHostPort, type HostPort, parseHostPort } from './host/config.js'
import { memberLine } from './host/member-line.js'
import { AdminClient, ApiCallError } from './api/client.js'
import { type DataDir, initDataDir } from './host/datadir.js'
import { EXIT, UserError, errorMessage } from './host/errors.js'
import { preflight } from './host/preflight.js'
import { createNodeLogger, LOG_CATEGORIES } from './host/log.js'
import type { NodeStatus, PoolboardNode } from './node.js'
import type { Json } from './api/server.js'
import { clientCommand, dataDir, datadirOption, output, withDataDir } from './commands/util.js'
import { VERSION } from './host/version.js'

function program(): Command {
  const cli = new Command('poolboard')
    .description('A node of a Bitcoin payment pool that keeps working when members go offline')
    .version(VERSION)

  cli
    .command('init')
    .description('create a data directory: config, libp2p key, member key (BIP340) and database')
    .addOption(datadirOption())
    .option('--name <name>', 'a label for this member', 'node')
    .option('--listen <host:port>', 'libp2p listen address', '0.0.0.0:7700')
    .option('--api <host:port>', 'admin API address (loopback only)', '127.0.0.1:7701')
    .option('--log-level <level>', 'trace, debug, info, warn, error or fatal', 'info')
    .option(
      '--member <entry>',
      'a pool member "NAME PEERID HOST:PORT" (repeat for each)',
      (v: string, all: string[] = []) => [...all, v]
    )
    .option('--lab', 'lab mode: test-only and adversarial features; never on a real pool')
    .option('--json', 'print the result as JSON')
    .action(
      async (opts: {
        datadir?: string
        name: string
        listen: string
        api: string
        logLevel: string
        member?: string[]
        lab?: boolean
        json?: boolean
      }) => {
        const dir = dataDir(opts)
        let config = applyOverrides(defaultConfig(), {
          name: opts.name,
          listen: opts.listen,
          api: opts.api,
          'log-level': opts.logLevel,
          lab: opts.lab === true ? '1' : undefined
        })
        for (const m of opts.member ?? []) config = applyOverrides(config, { member: m })
        const keys = await initDataDir(dir, config)
        const line = memberLine(config, keys.peerId)
        const result = {
          datadir: dir.path,
          config: dir.configFile,
          peerId: keys.peerId,
          memberKey: toHex(keys.memberKey),
          memberLine: line
        }
        const listed = config.members.some((m) => m.peerId === keys.peerId)
        output(opts.json === true, result, () =>
          [
            `created ${dir.path}`,
            `  peer id     ${result.peerId}`,
            `  member key  ${result.memberKey}`,
            `  config      ${result.config}`,
            '',
            "this member's line (send it to every other member; poolboard member-line prints it again):",
            `  ${line}`,
            '',
            listed
              ? `start it with: poolboard start --datadir ${dir.path}`
              : `before the first start, put every member's line in ${dir.configFile}, this one too; then: poolboard start --datadir ${dir.path}`
          ].join('\n')
        )
      }
    )

  withDataDir(
    cli
      .command('member-line')
      .description(
        'print this member\'s "member=NAME PEERID HOST:PORT" line, for every member\'s poolboard.conf (its own too)'
      )
  )
    .option(
      '--address <host:port>',
      "the address the other members dial (default: the listen address; for 0.0.0.0, this machine's first non-loopback address)"
    )
    .option('--json', 'print JSON')
    .action(async (opts: { datadir?: string; node?: number; address?: string; json?: boolean }) => {
      const dir = dataDir(opts)
      const config = dir.readConfig()
      const keys = await dir.readKeys()
      let address: HostPort | undefined
      if (opts.address !== undefined) {
        try {
          address = parseHostPort(opts.address)
        } catch (err) {
          throw new UserError(`--address: ${(err as Error).message}`, EXIT.usage)
        }
      }
      const line = memberLine(config, keys.peerId, address)
      output(
        opts.json === true,
        { name: config.name, peerId: keys.peerId, address: line.split(' ')[2], line },
        () => line
      )
    })

  withDataDir(cli.command('start').description('run the node in the foreground until SIGINT or SIGTERM'))
    .option('--listen <host:port>', "override the config's libp2p listen address")
    .option('--api <host:port>', "override the config's admin API address")
    .option('--log-level <level>', "override the config's log level")
    .option('--lab', 'lab mode: test-only and adversarial features; never on a real pool')
    .option(
      '--debug <categories>',
      `also log these parts at debug level: ${LOG_CATEGORIES.join(', ')} or all (comma-separated)`
    )
    .option('--quiet', "log to the data directory's log file only, not to stdout")
    .addOption(
      new Option(
        '--log-format <format>',
        'stdout log lines: text (one readable line per record) or json (as in the log file); default: text on a terminal, json otherwise'
      ).choices(['text', 'json'])
    )
    .option('--json', 'the same as --log-format json')
    .action(
      async (opts: {
        datadir?: string
        node?: number
        listen?: string
        api?: string
        logLevel?: string
        debug?: string
        lab?: boolean
        quiet?: boolean
        json?: boolean
        logFormat?: 'text' | 'json'
      }) => {
        await runNode(dataDir(opts), opts)
      }
    )

  clientCommand(
    cli,
    'status',
    'this member at a glance: its balance, the board (role, leader, commit), peers, alarms; then ids, addresses, version'
  ).action(async (opts: { datadir?: string; node?: number; json?: boolean }) => {
    const status = await AdminClient.fromDataDir(dataDir(opts)).get<Json<NodeStatus>>('/v1/status')
    output(opts.json === true, status, () => renderStatus(status))
  })

  withDataDir(cli.command('stop').description('ask the running node to shut down gracefully'))
    .option('--json', 'print JSON')
    .action(async (opts: { datadir?: string; node?: number; json?: boolean }) => {
      const r = await AdminClient.fromDataDir(dataDir(opts)).post<{ stopping: boolean }>('/v1/stop', {})
      output(opts.json === true, r, () => 'stopping')
    })

  cli.addCommand(boardCommand())
  cli.addCommand(clusterCommand())
  cli.addCommand(poolCommand())
  cli.addCommand(chainCommand())
  cli.addCommand(defenseCommand())
  cli.addCommand(labCommand())
  cli.addCommand(dashboardCommand())

  cli.addCommand(completionCommand(() => cli))

  // `poolboard help pool pay` shows the page of `pool pay`, not of `pool` (commander's own help
  // command looks at the first word only).
  cli.helpCommand(false)
  cli
    .command('help')
    .description('show the help of a command: poolboard help pool pay')
    .argument('[command...]', 'the command and its subcommands')
    .action((words: string[]) => {
      let cmd: Command = cli
      for (const [i, word] of words.entries()) {
        const next = cmd.commands.find((c) => c.name() === word || c.aliases().includes(word))
        if (next === undefined) {
          const known = cmd.commands.map((c) => c.name()).join(', ')
          throw new UserError(
            `no command "${words.slice(0, i + 1).join(' ')}"; ${cmd === cli ? 'the commands are' : `poolboard ${words.slice(0, i).join(' ')} has`}: ${known}`,
            EXIT.usage,
            'usage'
          )
        }
        cmd = next
      }
      process.stdout.write(cmd.helpInformation())
    })
  return cli
}

function renderStatus(s: Json<NodeStatus>): string {
  const peers = s.connectedPeers.length === 0 ? '(none)' : s.connectedPeers.map((p) => p.name).join(', ')
  const leader =
    s.board.leader === null ? 'none known (the board cannot commit)' : (s.board.leader.name ?? s.board.leader.peerId)
  const pool =
    s.pool.poolId === null
      ? 'no pool on the board yet (poolboard pool create)'
      : s.pool.balanceSats === null
        ? `${s.pool.poolId.slice(0, 16)}: no funds (kicked out)`
        : `${fmtSats(s.pool.balanceSats)} sats in the ${s.pool.poolLabel ?? '?'} of pool ${s.pool.poolId.slice(0, 16)}`
  const alarms =
    s.alarms.board + s.alarms.defense === 0
      ? 'none'
      : `${s.alarms.board} board, ${s.alarms.defense} defense (poolboard board status, poolboard defense status)`
  return [
    `name          ${s.name}${s.lab ? ` (lab mode${s.labCoalition ? ', coalition member' : ''})` : ''}${s.cut ? ' (cut off)' : ''}`,
    `balance       ${pool}`,
    `board         ${s.board.role}, term ${s.board.term}, leader ${leader}; commit ${s.board.commit}, applied ${s.board.applied}`,
    `peers         ${s.connectedPeerCount}/${Math.max(0, s.memberCount - 1)} members connected: ${peers}`,
    `alarms        ${alarms}`,
    `chain         height ${s.pool.chainHeight}`,
    `peer id       ${s.peerId}`,
    `member key    ${s.memberKey}`,
    `listening     ${s.listenAddresses.join(', ')}`,
    `admin API     ${s.api}`,
    `version       ${s.version}, pid ${s.pid}, up ${s.uptimeSeconds} s`
  ].join('\n')
}

const fmtSats = (n: number | string): string => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',')

async function runNode(
  dir: DataDir,
  opts: {
    listen?: string
    api?: string
    logLevel?: string
    debug?: string
    lab?: boolean
    quiet?: boolean
    json?: boolean
    logFormat?: 'text' | 'json'
  }
): Promise<void> {
  const config = applyOverrides(dir.readConfig(), {
    listen: opts.listen,
    api: opts.api,
    'log-level': opts.logLevel,
    debug: opts.debug,
    lab: opts.lab === true ? '1' : undefined
  })
  const keys = await dir.readKeys()
  await preflight(dir, config, keys)
  const { logger, category, reopen, flush } = await createNodeLogger({
    file: dir.logFile,
    level: config.logLevel,
    debug: config.debug,
    quiet: opts.quiet === true,
    json: opts.json === true || (opts.logFormat ?? (process.stdout.isTTY === true ? 'text' : 'json')) === 'json',
    name: config.name,
    names: new Map(config.members.map((m) => [m.peerId, m.name]))
  })
  for (const file of dir.looseSecrets())
    logger.warn({ file }, 'secret key file is readable by other users; chmod 600 it')

  // Handlers go in before the node starts: it writes its cookie (which tools take as "up") while
  // starting, and a signal that arrives then must still stop it cleanly, not kill it mid-write.
  let node: PoolboardNode | undefined
  let stopSignal: string | undefined
  let signals = 0
  const stop = (signal: string, running: PoolboardNode): void => {
    running.stop(signal).then(
      () => {
        flush()
        process.exit(0)
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed')
        flush()
        process.exit(1)
      }
    )
  }
  const shutdown = (signal: string): void => {
    signals++
    if (signals > 1) {
      logger.warn({ signal }, 'second signal during shutdown: exiting now')
      flush()
      process.exit(1)
    }
    if (node === undefined) {
      logger.info({ signal }, 'signal while starting: stopping once started')
      stopSignal = signal
      return
    }
    stop(signal, node)
  }
  process.on('SIGINT', () => {
    shutdown('SIGINT')
  })
  process.on('SIGTERM', () => {
    shutdown('SIGTERM')
  })
  process.on('SIGHUP', () => {
    reopen()
    logger.info('log file reopened')
  })
  process.on('uncaughtException', (err) => {
    // State after an unexpected throw is unknown: stop rather than risk serving a wrong board.
    logger.fatal({ err }, 'uncaught exception')
    flush()
    process.exit(70)
  })
  process.on('unhandledRejection', (err) => {
    logger.fatal({ err }, 'unhandled rejection')
    flush()
    process.exit(70)
  })

  // Loaded here, not at the top: libp2p and LevelDB take a while to load, and every other command
  // is a short-lived client that needs neither.
  const { PoolboardNode: Node } = await import('./node.js')
  node = await Node.start({
    dir,
    config,
    keys,
    logger,
    category,
    onFatal: (err) => {
      logger.fatal({ err }, 'stopping: the node cannot keep its promises')
      flush()
      process.exit(70)
    }
  })
  if (stopSignal !== undefined) {
    stop(stopSignal, node)
    return
  }
  if (opts.quiet !== true) {
    process.stderr.write(
      `poolboard ${config.name} running: peer ${keys.peerId}, API ${formatHostPort(config.api)}; Ctrl-C to stop\n`
    )
  }
}

/** Every command and subcommand under `cmd`, `cmd` included. */
function allCommands(cmd: Command): Command[] {
  return [cmd, ...cmd.commands.flatMap(allCommands)]
}

export async function main(argv: string[]): Promise<void> {
  const json = argv.slice(2).includes('--json')
  const cli = program()
  for (const c of allCommands(cli)) {
    // Usage errors exit 2 (docs/operations.md), and under --json they are JSON like every other error.
    c.exitOverride()
    c.configureOutput({ outputError: () => {} }) // main() prints the one line (or the JSON error)
  }
  try {
    await cli.parseAsync(argv)
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0 || err.code === 'commander.helpDisplayed' || err.code === 'commander.version')
        process.exit(0)
      if (err.code === 'commander.help') process.exit(EXIT.usage) // a command group without its subcommand: its help is on stderr
      fail(
        json,
        new UserError(`${err.message.replace(/^error: /, '')} (run with --help for usage)`, EXIT.usage, 'usage')
      )
    }
    if (err instanceof UserError) fail(json, err)
    if (process.env.POOLBOARD_DEBUG !== undefined) process.stderr.write(`${(err as Error).stack ?? ''}\n`)
    fail(json, new UserError(errorMessage(err), EXIT.error, 'error'))
  }
}

/** Prints the error, one line (or `{"error":{"code","message"}}` under --json), on stderr, and exits with its code. */
function fail(json: boolean, err: UserError): never {
  const details = err instanceof ApiCallError ? err.body : {}
  process.stderr.write(
    json
      ? JSON.stringify({ error: { ...details, code: err.code, message: errorMessage(err), exitCode: err.exitCode } }) +
          '\n'
      : `poolboard: ${errorMessage(err)}\n`
  )
  process.exit(err.exitCode)
}

void main(process.argv)
