#!/usr/bin/env node
import './host/polyfill.js'
import { Command } from 'commander'
import { toHex } from '../protocol/bytes.js'
import { boardCommand } from './commands/board.js'
import { clusterCommand } from './commands/cluster.js'
import { defenseCommand } from './commands/defense.js'
import { dashboardCommand } from './dashboard/command.js'
import { chainCommand, poolCommand } from './commands/pool.js'
import { labCommand } from './lab/campaign/cli.js'
import { applyOverrides, defaultConfig, formatHostPort } from './host/config.js'
import { AdminClient } from './api/client.js'
import { type DataDir, initDataDir } from './host/datadir.js'
import { UserError, errorMessage } from './host/errors.js'
import { createNodeLogger } from './host/log.js'
import type { NodeStatus, PoolboardNode } from './node.js'
import { clientCommand, dataDir, datadirOption, output } from './commands/util.js'
import { VERSION } from './host/version.js'


function program (): Command {
  const cli = new Command('poolboard')
    .description('A node of a Bitcoin payment pool that keeps working when members go offline')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')

  cli.command('init')
    .description('create a data directory: config, libp2p key, member key (BIP340) and database')
    .addOption(datadirOption())
    .option('--name <name>', 'a label for this member', 'node')
    .option('--listen <host:port>', 'libp2p listen address', '0.0.0.0:7700')
    .option('--api <host:port>', 'admin API address (loopback only)', '127.0.0.1:7701')
    .option('--log-level <level>', 'trace, debug, info, warn, error or fatal', 'info')
    .option('--member <entry>', 'a pool member "NAME PEERID HOST:PORT" (repeat for each)', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--lab', 'lab mode: test-only and adversarial features; never on a real pool')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { datadir?: string, name: string, listen: string, api: string, logLevel: string, member: string[], lab?: boolean, json?: boolean }) => {
      const dir = dataDir(opts)
      let config = applyOverrides(defaultConfig(), { name: opts.name, listen: opts.listen, api: opts.api, 'log-level': opts.logLevel, lab: opts.lab === true ? '1' : undefined })
      for (const m of opts.member) config = applyOverrides(config, { member: m })
      const keys = await initDataDir(dir, config)
      const result = { datadir: dir.path, config: dir.configFile, peerId: keys.peerId, memberKey: toHex(keys.memberKey) }
      output(opts.json === true, result, () => [
        `created ${dir.path}`,
        `  peer id     ${result.peerId}`,
        `  member key  ${result.memberKey}`,
        `  config      ${result.config}`,
        `start it with: poolboard start --datadir ${dir.path}`
      ].join('\n'))
    })

  cli.command('start')
    .description('run the node in the foreground until SIGINT or SIGTERM')
    .addOption(datadirOption())
    .option('--listen <host:port>', 'override the config\'s libp2p listen address')
    .option('--api <host:port>', 'override the config\'s admin API address')
    .option('--log-level <level>', 'override the config\'s log level')
    .option('--lab', 'lab mode: test-only and adversarial features; never on a real pool')
    .option('--quiet', 'log to the data directory\'s log file only, not to stdout')
    .action(async (opts: { datadir?: string, listen?: string, api?: string, logLevel?: string, lab?: boolean, quiet?: boolean }) => {
      await runNode(dataDir(opts), opts)
    })

  clientCommand(cli, 'status', 'show the running node\'s peer id, member key, addresses, peers, uptime and version')
    .action(async (opts: { datadir?: string, json?: boolean }) => {
      const status = await AdminClient.fromDataDir(dataDir(opts)).get<NodeStatus>('/v1/status')
      output(opts.json === true, status, () => renderStatus(status))
    })

  cli.command('stop')
    .description('ask the running node to shut down gracefully')
    .addOption(datadirOption())
    .action(async (opts: { datadir?: string }) => {
      await AdminClient.fromDataDir(dataDir(opts)).post('/v1/stop', {})
      process.stdout.write('stopping\n')
    })

  cli.addCommand(boardCommand())
  cli.addCommand(clusterCommand())
  cli.addCommand(poolCommand())
  cli.addCommand(chainCommand())
  cli.addCommand(defenseCommand())
  cli.addCommand(labCommand())
  cli.addCommand(dashboardCommand())
  return cli
}

function renderStatus (s: NodeStatus): string {
  const peers = s.connectedPeers.length === 0 ? '(none)' : s.connectedPeers.map((p) => `${p.name} ${p.peerId}`).join('\n              ')
  return [
    `name          ${s.name}${s.lab ? ` (lab mode${s.labCoalition ? ', coalition member' : ''})` : ''}${s.cut ? ' (cut off)' : ''}`,
    `version       ${s.version}`,
    `peer id       ${s.peerId}`,
    `member key    ${s.memberKey}`,
    `listening     ${s.listenAddresses.join(', ')}`,
    `admin API     ${s.api}`,
    `peers         ${s.connectedPeerCount}/${Math.max(0, s.memberCount - 1)} members connected`,
    `              ${peers}`,
    `uptime        ${s.uptimeSeconds} s`,
    `pid           ${s.pid}`
  ].join('\n')
}

async function runNode (dir: DataDir, opts: { listen?: string, api?: string, logLevel?: string, lab?: boolean, quiet?: boolean }): Promise<void> {
  const config = applyOverrides(dir.readConfig(), { listen: opts.listen, api: opts.api, 'log-level': opts.logLevel, lab: opts.lab === true ? '1' : undefined })
  const keys = await dir.readKeys()
  const { logger, reopen, flush } = await createNodeLogger({ file: dir.logFile, level: config.logLevel, quiet: opts.quiet === true, name: config.name })
  for (const file of dir.looseSecrets()) logger.warn({ file }, 'secret key file is readable by other users; chmod 600 it')

  // Handlers go in before the node starts: it writes its cookie (which tools take as "up") while
  // starting, and a signal that arrives then must still stop it cleanly, not kill it mid-write.
  let node: PoolboardNode | undefined
  let stopSignal: string | undefined
  let signals = 0
  const stop = (signal: string, running: PoolboardNode): void => {
    running.stop(signal).then(() => {
      flush()
      process.exit(0)
    }, (err: unknown) => {
      logger.error({ err }, 'shutdown failed')
      flush()
      process.exit(1)
    })
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
  process.on('SIGINT', () => { shutdown('SIGINT') })
  process.on('SIGTERM', () => { shutdown('SIGTERM') })
  process.on('SIGHUP', () => { reopen(); logger.info('log file reopened') })
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
    process.stderr.write(`poolboard ${config.name} running: peer ${keys.peerId}, API ${formatHostPort(config.api)}; Ctrl-C to stop\n`)
  }
}

export async function main (argv: string[]): Promise<void> {
  try {
    await program().parseAsync(argv)
  } catch (err) {
    if (err instanceof UserError) {
      process.stderr.write(`poolboard: ${errorMessage(err)}\n`)
      process.exit(err.exitCode)
    }
    process.stderr.write(`poolboard: ${errorMessage(err)}\n`)
    if (process.env.POOLBOARD_DEBUG !== undefined) process.stderr.write(`${(err as Error).stack ?? ''}\n`)
    process.exit(1)
  }
}

void main(process.argv)

