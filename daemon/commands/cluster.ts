import { createReadStream, existsSync, readFileSync, statSync, watch } from 'node:fs'
import { Command, InvalidArgumentError } from 'commander'
import { AdminClient } from '../api/client.js'
import { type ClusterNodeState, LocalCluster } from '../cluster/index.js'
import { output, parseIndex, parsePositive, parseSats } from './util.js'
import { checkSetting, parseHostPort } from '../host/config.js'
import { EXIT, UserError } from '../host/errors.js'
import { DEFAULT_CLUSTER_DIR } from '../host/datadir.js'
import { ensureClusterPool } from '../cluster/pool.js'
import { DEFAULT_BALANCE_SATS, DEFAULT_KICKOUT_DELAY_BLOCKS } from '../pool/view.js'
import { renderPoolStatus } from './pool.js'
import { Progress, renderTable } from '../host/table.js'
import { formatLogLine } from '../host/log.js'

const DEFAULT_WAIT_S = 60
/** How long `cluster start` and `cluster up` wait for a started node to read the board through a leader. */
const CATCH_UP_WAIT_MS = 20_000

interface ClusterOptions {
  dir: string
  json?: boolean
}

function dirOption(cmd: Command): Command {
  return cmd.option('--dir <dir>', 'cluster directory', process.env.POOLBOARD_CLUSTER_DIR ?? DEFAULT_CLUSTER_DIR)
}

function renderNodes(states: ClusterNodeState[]): string {
  const total = states.length - 1
  return renderTable(
    ['node', 'name', 'peer id', 'pid', 'api', 'peers', 'state'],
    states.map((s) => [
      String(s.index),
      s.name,
      s.peerId,
      s.pid === null ? '-' : String(s.pid),
      s.api,
      s.connectedPeers === null ? '-' : `${s.connectedPeers}/${total}`,
      s.running ? (s.cut ? 'cut off' : 'running') : 'stopped'
    ]),
    { alignRight: [0] }
  )
}

async function printStatus(cluster: LocalCluster, json: boolean, note?: string): Promise<void> {
  const nodes = await cluster.status()
  output(json, { dir: cluster.dir, nodes }, () => (note === undefined ? '' : note + '\n') + renderNodes(nodes))
}

function collectSetting(text: string, all: Record<string, string> = {}): Record<string, string> {
  const eq = text.indexOf('=')
  if (eq <= 0) throw new InvalidArgumentError(`expected KEY=VALUE, got "${text}"`)
  const key = text.slice(0, eq)
  if (['name', 'listen', 'api', 'member', 'lab', 'voters'].includes(key))
    throw new InvalidArgumentError(`${key} is set by the cluster itself`)
  // Checked now, by the config file's own rules, so that the error names this option and the key.
  const problem = checkSetting(key, text.slice(eq + 1))
  if (problem !== null) throw new InvalidArgumentError(`${key}: ${problem}`)
  return { ...all, [key]: text.slice(eq + 1) }
}

export function clusterCommand(): Command {
  const cluster = new Command('cluster').description(
    'run a local cluster of nodes on loopback (one process and data directory per node)'
  )

  dirOption(cluster.command('up'))
    .description('create (first time) and start every node, wait until all are connected, print their table')
    .option('--nodes <n>', 'number of nodes for a new cluster', parsePositive, 3)
    .option('--lab', 'start the nodes in lab mode (raw board entries, adversarial behaviours)')
    .option(
      '--voters <n>',
      'only nodes 1..N vote on the board; the others are learners (default: all vote)',
      parsePositive
    )
    .option(
      '--set <key=value>',
      'a config setting for every node of a new cluster, e.g. --set snapshot-entries=500 (repeatable)',
      collectSetting
    )
    .option('--wait <seconds>', 'how long to wait for the nodes to connect', parsePositive, DEFAULT_WAIT_S)
    .option(
      '--pool',
      'then create the pool among the nodes (if the board holds none) and wait until every node shows it'
    )
    .option('--balance <sats>', "with --pool: each member's starting balance", parseSats, String(DEFAULT_BALANCE_SATS))
    .option(
      '--kickout-delay <blocks>',
      'with --pool: the kick-out delay X in blocks',
      parsePositive,
      DEFAULT_KICKOUT_DELAY_BLOCKS
    )
    .option('--json', 'print JSON')
    .action(
      async (
        opts: ClusterOptions & {
          nodes: number
          lab?: boolean
          voters?: number
          set?: Record<string, string>
          wait: number
          pool?: boolean
          balance: string
          kickoutDelay: number
        },
        cmd: Command
      ) => {
        const json = opts.json === true
        const c = new LocalCluster(opts.dir, new Progress(!json))
        if (c.exists()) {
          const file = c.read()
          if (file.nodes.length !== opts.nodes && cmd.getOptionValueSource('nodes') === 'cli') {
            throw new UserError(
              `the cluster in ${c.dir} has ${file.nodes.length} nodes; use --nodes ${file.nodes.length}, or cluster down and destroy it first`
            )
          }
          // What only a new cluster takes is refused on an existing one rather than ignored.
          const ignored = ['lab', 'voters', 'set']
            .filter((o) => cmd.getOptionValueSource(o) === 'cli')
            .map((o) => `--${o}`)
          if (ignored.length > 0) {
            throw new UserError(
              `${ignored.join(', ')} ${ignored.length === 1 ? 'applies' : 'apply'} only to a new cluster, and ${c.dir} exists` +
                ` (lab mode ${file.lab ? 'on' : 'off'}); leave ${ignored.length === 1 ? 'it' : 'them'} out, or run cluster down and cluster destroy first`,
              EXIT.usage,
              'usage'
            )
          }
        } else {
          await c.create({ nodes: opts.nodes, lab: opts.lab === true, voters: opts.voters, settings: opts.set ?? {} })
        }
        const stopped = c.indexes().filter((i) => c.runningPid(i) === undefined)
        const deadlineMs = Date.now() + opts.wait * 1000
        if (stopped.length === 0 && opts.pool !== true) {
          await printStatus(c, json, `the cluster in ${c.dir} is already running`)
          return
        }
        await c.startInWaves(stopped, deadlineMs)
        await c.waitConnected(deadlineMs, 'connecting')
        for (const index of stopped)
          await c.waitCaughtUp(index, Math.min(deadlineMs, Date.now() + CATCH_UP_WAIT_MS), 'catching up')
        if (opts.pool === true) {
          const poolOptions = ['balance', 'kickoutDelay'].filter((o) => cmd.getOptionValueSource(o) === 'cli')
          if (poolOptions.length > 0) {
            const existing = await AdminClient.fromDataDir(c.dataDir(c.indexes()[0])).get<{ poolId: string | null }>(
              '/v1/pool/status'
            )
            if (existing.poolId !== null) {
              throw new UserError(
                `${poolOptions.map((o) => (o === 'kickoutDelay' ? '--kickout-delay' : '--balance')).join(', ')}: the board already holds pool ${existing.poolId.slice(0, 16)}, ` +
                  'so these apply to nothing; leave them out, or destroy the cluster to make a new pool',
                EXIT.usage,
                'usage'
              )
            }
          }
          await ensureClusterPool(c, {
            balanceSats: opts.balance,
            kickoutDelayBlocks: opts.kickoutDelay,
            deadlineMs,
            progress: new Progress(!json)
          })
          const status = await AdminClient.fromDataDir(c.dataDir(c.indexes()[0])).get<
            Parameters<typeof renderPoolStatus>[0]
          >('/v1/pool/status')
          const nodes = await c.status()
          output(
            json,
            { dir: c.dir, nodes, pool: status },
            () => renderNodes(nodes) + '\n\n' + renderPoolStatus(status)
          )
          return
        }
        await printStatus(c, json)
      }
    )

  dirOption(cluster.command('create'))
    .description('only create the data directories of a cluster (for nodes started elsewhere, e.g. containers)')
    .option('--nodes <n>', 'number of nodes', parsePositive, 3)
    .option(
      '--addresses <list>',
      'comma-separated HOST:PORT where each node listens and is dialed (default: loopback, free ports)'
    )
    .option('--lab', 'lab mode')
    .option('--voters <n>', 'only nodes 1..N vote on the board; the others are learners', parsePositive)
    .option('--set <key=value>', 'a config setting for every node (repeatable)', collectSetting)
    .option('--json', 'print JSON')
    .action(
      async (
        opts: ClusterOptions & {
          nodes: number
          addresses?: string
          lab?: boolean
          voters?: number
          set?: Record<string, string>
        }
      ) => {
        const c = new LocalCluster(opts.dir)
        if (c.exists()) throw new UserError(`a cluster already exists in ${c.dir}`)
        const addresses = opts.addresses?.split(',').map((a) => {
          try {
            return parseHostPort(a.trim())
          } catch (err) {
            throw new UserError(`--addresses: ${(err as Error).message}`)
          }
        })
        const file = await c.create({
          nodes: opts.nodes,
          lab: opts.lab === true,
          addresses,
          voters: opts.voters,
          settings: opts.set ?? {}
        })
        output(opts.json === true, file, () =>
          renderTable(
            ['node', 'name', 'peer id', 'listen', 'api'],
            file.nodes.map((n) => [String(n.index), n.name, n.peerId, n.listen, n.api])
          )
        )
      }
    )

  dirOption(cluster.command('status'))
    .description('show every node: pid, API address, connected peers, running or not')
    .option('--json', 'print JSON')
    .action(async (opts: ClusterOptions) => {
      await printStatus(new LocalCluster(opts.dir), opts.json === true)
    })

  dirOption(cluster.command('down'))
    .description('stop every node gracefully (SIGTERM, then SIGKILL after 15 s); data is kept')
    .option('--json', 'print JSON')
    .action(async (opts: ClusterOptions) => {
      const c = new LocalCluster(opts.dir)
      const stopped = (
        await Promise.all(c.indexes().map(async (i) => ((await c.signalNode(i, 'SIGTERM')) ? i : undefined)))
      ).filter((i) => i !== undefined)
      const n = stopped.length
      output(opts.json === true, { stopped }, () => `stopped ${n} node${n === 1 ? '' : 's'}`)
    })

  dirOption(cluster.command('destroy'))
    .description("delete a stopped cluster's data directories")
    .option('--json', 'print JSON')
    .action(async (opts: ClusterOptions) => {
      const c = new LocalCluster(opts.dir)
      c.destroy()
      output(opts.json === true, { removed: c.dir }, () => `removed ${c.dir}`)
    })

  dirOption(cluster.command('stop'))
    .description('stop node I gracefully')
    .argument('<I>', 'node number', parseIndex)
    .option('--json', 'print JSON')
    .action(async (index: number, opts: ClusterOptions) => {
      const c = new LocalCluster(opts.dir)
      if (!(await c.signalNode(index, 'SIGTERM')))
        throw new UserError(`node ${index} is not running`, EXIT.refused, 'not-running')
      output(opts.json === true, { node: index, stopped: true }, () => `node ${index} stopped`)
    })

  dirOption(cluster.command('kill'))
    .description('kill node I with SIGKILL (for fault tests)')
    .argument('<I>', 'node number', parseIndex)
    .option('--json', 'print JSON')
    .action(async (index: number, opts: ClusterOptions) => {
      const c = new LocalCluster(opts.dir)
      if (!(await c.signalNode(index, 'SIGKILL')))
        throw new UserError(`node ${index} is not running`, EXIT.refused, 'not-running')
      output(opts.json === true, { node: index, killed: true }, () => `node ${index} killed`)
    })

  dirOption(cluster.command('start'))
    .description('start node I and wait until it is connected to the other running nodes')
    .argument('<I>', 'node number', parseIndex)
    .option('--wait <seconds>', 'how long to wait', parsePositive, DEFAULT_WAIT_S)
    .option('--json', 'print JSON')
    .action(async (index: number, opts: ClusterOptions & { wait: number }) => {
      const json = opts.json === true
      const c = new LocalCluster(opts.dir, new Progress(!json))
      const deadlineMs = Date.now() + opts.wait * 1000
      const pid = c.startNode(index)
      await c.waitForApi(index, deadlineMs, pid)
      await c.waitConnected(deadlineMs, `node ${index} reconnecting`)
      const current = await c.waitCaughtUp(
        index,
        Math.min(deadlineMs, Date.now() + CATCH_UP_WAIT_MS),
        `node ${index} catching up`
      )
      await printStatus(
        c,
        json,
        current
          ? undefined
          : `node ${index} has not read the board through a leader yet (are most nodes running?); its pool status may be old`
      )
    })

  for (const [name, path, description] of [
    [
      'cut',
      '/v1/network/cut',
      'cut node I off: it drops and refuses connections to every other node, without stopping'
    ],
    ['heal', '/v1/network/heal', 'undo cut: node I reconnects to the others']
  ] as const) {
    dirOption(cluster.command(name))
      .description(description)
      .argument('<I>', 'node number', parseIndex)
      .option('--json', 'print JSON')
      .action(async (index: number, opts: ClusterOptions) => {
        const c = new LocalCluster(opts.dir)
        if (c.runningPid(index) === undefined)
          throw new UserError(
            `node ${index} is not running; start it with: poolboard cluster start ${index}`,
            EXIT.unreachable,
            'not-running'
          )
        const r = await AdminClient.fromDataDir(c.dataDir(index)).post<{ cut: boolean }>(path, {})
        output(
          opts.json === true,
          { node: index, ...r },
          () => `node ${index} ${name === 'cut' ? 'cut off' : 'healed'}`
        )
      })
  }

  dirOption(cluster.command('logs'))
    .description("print node I's log")
    .argument('<I>', 'node number', parseIndex)
    .option('--lines <n>', 'only the last N lines', parsePositive)
    .option('-f, --follow', 'keep printing new lines')
    .option('--json', 'print the raw JSON lines')
    .action(async (index: number, opts: ClusterOptions & { lines?: number; follow?: boolean }) => {
      const file = new LocalCluster(opts.dir).dataDir(index).logFile
      if (!existsSync(file)) throw new UserError(`node ${index} has no log yet (${file})`)
      const format = opts.json === true ? (l: string) => l : formatLogLine
      let lines = readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
      if (opts.lines !== undefined) lines = lines.slice(-opts.lines)
      for (const l of lines) process.stdout.write(format(l) + '\n')
      if (opts.follow === true) await follow(file, statSync(file).size, format)
    })

  return cluster
}

async function follow(file: string, fromByte: number, format: (l: string) => string): Promise<void> {
  let offset = fromByte
  let partial = ''
  const readMore = async (): Promise<void> => {
    const size = statSync(file).size
    if (size < offset) offset = 0 // rotated or truncated
    if (size === offset) return
    const stream = createReadStream(file, { start: offset, end: size - 1, encoding: 'utf8' })
    for await (const chunk of stream) partial += chunk as string
    offset = size
    const lines = partial.split('\n')
    partial = lines.pop() ?? ''
    for (const l of lines) if (l !== '') process.stdout.write(format(l) + '\n')
  }
  await new Promise<void>(() => {
    let busy = Promise.resolve()
    watch(file, () => {
      busy = busy.then(readMore)
    })
  })
}
