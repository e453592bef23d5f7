import { spawn } from 'node:child_process'
import { closeSync, existsSync, openSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { applyOverrides, defaultConfig, formatHostPort, type HostPort, type MemberEntry } from '../host/config.js'
import { AdminClient } from '../api/client.js'
import { DataDir, initDataDir } from '../host/datadir.js'
import { UserError } from '../host/errors.js'
import type { NodeStatus } from '../api/types.js'
import { Progress } from '../host/table.js'
import { isAlive, sleep } from '../host/wait.js'

// daemon/cluster/: the local cluster launcher behind `poolboard cluster …`: data directories,
// processes, and the pool of `cluster up --pool` (pool.ts).

/** What `cluster up` remembers about a local cluster, in DIR/cluster.json. */
export interface ClusterFile {
  version: 1
  lab: boolean
  nodes: Array<{ index: number; name: string; datadir: string; peerId: string; listen: string; api: string }>
}

export interface ClusterNodeState {
  index: number
  name: string
  peerId: string
  pid: number | null
  running: boolean
  datadir: string
  api: string
  listen: string
  connectedPeers: number | null
  cut: boolean
}

const CLUSTER_FILE = 'cluster.json'
const MAX_NODES = 64
/** Nodes started at once by `startInWaves`. */
const WAVE_NODES = 8
/**
 * V8 settings of every node process: a young generation of 2 MiB per semi-space instead of 16
 * (an idle node allocates little; the default reserved tens of MiB per process) and a heap cap,
 * so that 64 nodes fit one machine. A node's working set is far below either.
 */
const NODE_V8_FLAGS = ['--max-semi-space-size=2', '--max-old-space-size=512']
const STOP_TIMEOUT_MS = 15_000
const POLL_INTERVAL_MS = 100
const STATUS_TIMEOUT_MS = 2_000

/** A local cluster of node processes on loopback, each with its own data directory under `dir`. */
export class LocalCluster {
  readonly dir: string

  constructor(
    dir: string,
    private readonly progress = new Progress()
  ) {
    this.dir = resolve(dir)
  }

  exists(): boolean {
    return existsSync(join(this.dir, CLUSTER_FILE))
  }

  read(): ClusterFile {
    if (!this.exists())
      throw new UserError(`no cluster in ${this.dir} (create one with: poolboard cluster up --dir ${this.dir})`)
    return JSON.parse(readFileSync(join(this.dir, CLUSTER_FILE), 'utf8')) as ClusterFile
  }

  /**
   * Creates the data directories of a new cluster: keys, and configs that list every member.
   * Without `addresses`, every node is on loopback with free ports. With them (one per node, e.g.
   * containers on their own IPs), node i listens on addresses[i] and its API on 127.0.0.1:7701.
   */
  async create(options: {
    nodes: number
    lab: boolean
    addresses?: HostPort[]
    voters?: number
    settings?: Record<string, string>
  }): Promise<ClusterFile> {
    if (!Number.isSafeInteger(options.nodes) || options.nodes < 1 || options.nodes > MAX_NODES) {
      throw new UserError(`--nodes must be between 1 and ${MAX_NODES}, got ${options.nodes}`)
    }
    if (existsSync(this.dir) && readdirSync(this.dir).length > 0) {
      throw new UserError(`${this.dir} exists and is not a cluster directory; choose another --dir`)
    }
    if (options.voters !== undefined && (options.voters < 1 || options.voters > options.nodes)) {
      throw new UserError(
        `--voters must be between 1 and the number of nodes (${options.nodes}), got ${options.voters}`
      )
    }
    if (options.addresses !== undefined && options.addresses.length !== options.nodes) {
      throw new UserError(`--addresses lists ${options.addresses.length} addresses for ${options.nodes} nodes`)
    }
    const ports = options.addresses === undefined ? await freePorts(options.nodes * 2) : []
    const made: Array<{ dir: DataDir; member: MemberEntry; api: HostPort }> = []
    for (let i = 1; i <= options.nodes; i++) {
      const dir = new DataDir(join(this.dir, `node${i}`))
      const listen = options.addresses?.[i - 1] ?? { host: '127.0.0.1', port: ports[2 * (i - 1)] }
      const api =
        options.addresses === undefined ? { host: '127.0.0.1', port: ports[2 * (i - 1) + 1] } : defaultConfig().api
      const base = defaultConfig()
      const voters =
        options.voters === undefined ? null : Array.from({ length: options.voters }, (_, v) => `node${v + 1}`)
      const config = applyOverrides(
        { ...base, name: `node${i}`, listen, api, lab: options.lab, board: { ...base.board, voters } },
        options.settings ?? {}
      )
      const keys = await initDataDir(dir, config)
      made.push({
        dir,
        member: {
          name: config.name,
          peerId: keys.peerId,
          address: listen,
          api: options.addresses === undefined ? api : undefined
        },
        api
      })
    }
    const members = made.map((m) => m.member)
    for (const m of made) m.dir.writeConfig({ ...m.dir.readConfig(), members })
    const file: ClusterFile = {
      version: 1,
      lab: options.lab,
      nodes: made.map((m, i) => ({
        index: i + 1,
        name: m.member.name,
        datadir: `node${i + 1}`,
        peerId: m.member.peerId,
        listen: formatHostPort(m.member.address),
        api: formatHostPort(m.api)
      }))
    }
    writeFileSync(join(this.dir, CLUSTER_FILE), JSON.stringify(file, null, 2) + '\n')
    return file
  }

  dataDir(index: number): DataDir {
    const node = this.node(index)
    return new DataDir(join(this.dir, node.datadir))
  }

  node(index: number): ClusterFile['nodes'][number] {
    const file = this.read()
    const node = file.nodes.find((n) => n.index === index)
    if (node === undefined) throw new UserError(`no node ${index} in ${this.dir} (nodes are 1 to ${file.nodes.length})`)
    return node
  }

  indexes(): number[] {
    return this.read().nodes.map((n) => n.index)
  }

  /** The pid of node `index` if its process is alive. */
  runningPid(index: number): number | undefined {
    const dir = this.dataDir(index)
    const pid = dir.readPid()
    return pid !== undefined && isNodeProcess(pid, dir.path) ? pid : undefined
  }

  /** Starts node `index` in the background; its stdout and stderr go to logs/console.log. */
  startNode(index: number): number {
    if (this.runningPid(index) !== undefined) throw new UserError(`node ${index} is already running`)
    const dir = this.dataDir(index)
    const out = openSync(join(dir.path, 'logs', 'console.log'), 'a')
    try {
      const child = spawn(
        process.execPath,
        [...NODE_V8_FLAGS, ...cliInvocation(), 'start', '--datadir', dir.path, '--quiet'],
        {
          detached: true,
          stdio: ['ignore', out, out],
          env: process.env
        }
      )
      child.unref()
      if (child.pid === undefined) throw new UserError(`could not start node ${index}`)
      return child.pid
    } finally {
      closeSync(out)
    }
  }

  /**
   * Starts nodes `WAVE_NODES` at a time, each wave once the previous one answers on its API: a node
   * spends its first second or so loading code and keys (about a core-second), so 64 started at
   * once on two cores took longer than the API deadline to answer.
   */
  async startInWaves(indexes: readonly number[], deadlineMs: number): Promise<void> {
    for (let i = 0; i < indexes.length; i += WAVE_NODES) {
      const wave = indexes.slice(i, i + WAVE_NODES).map((index) => ({ index, pid: this.startNode(index) }))
      this.progress.update(`starting: ${Math.min(indexes.length, i + WAVE_NODES)}/${indexes.length} nodes`)
      for (const { index, pid } of wave) await this.waitForApi(index, deadlineMs, pid)
    }
    this.progress.done()
  }

  /** Waits until node `index` answers on its API, or its process has died. */
  async waitForApi(index: number, deadlineMs: number, pid: number): Promise<void> {
    const dir = this.dataDir(index)
    while (Date.now() < deadlineMs) {
      if (!isAlive(pid))
        throw new UserError(
          `node ${index} exited during start-up: ${lastLines(join(dir.path, 'logs', 'console.log'), 3)}`
        )
      if (existsSync(dir.cookieFile)) {
        try {
          await AdminClient.fromDataDir(dir).get<NodeStatus>('/v1/status', { timeoutMs: STATUS_TIMEOUT_MS })
          return
        } catch {
          /* not ready yet */
        }
      }
      await sleep(POLL_INTERVAL_MS)
    }
    throw new UserError(`node ${index} did not answer on its API in time (see ${join(dir.path, 'logs')})`)
  }

  /** Waits until every running, not cut-off node is connected to every other such node. */
  async waitConnected(deadlineMs: number, label: string): Promise<void> {
    for (;;) {
      const states = await this.status()
      const live = states.filter((s) => s.running && !s.cut)
      const want = live.length - 1
      const links = live.reduce((sum, s) => sum + Math.min(s.connectedPeers ?? 0, want), 0)
      this.progress.update(`${label}: ${live.length} nodes up, ${links}/${live.length * want} member links`)
      if (live.every((s) => (s.connectedPeers ?? -1) >= want)) {
        this.progress.done()
        return
      }
      if (Date.now() >= deadlineMs) {
        this.progress.done()
        throw new UserError(
          `${label}: the nodes did not all connect in time (${links}/${live.length * want} links); see poolboard cluster logs I`
        )
      }
      await sleep(POLL_INTERVAL_MS)
    }
  }

  /**
   * Waits until node `index` has read the board through a leader, so that what it shows right
   * after a start is the current board, not the one it had when it stopped. False if it could not
   * by the deadline (no leader reachable: too few nodes running).
   */
  async waitCaughtUp(index: number, deadlineMs: number, label: string): Promise<boolean> {
    const client = AdminClient.fromDataDir(this.dataDir(index))
    for (;;) {
      this.progress.update(`${label}: node ${index} reading the board through its leader`)
      try {
        const s = await client.get<{ fresh: boolean }>('/v1/pool/status?fresh=1', {
          timeoutMs: STATUS_TIMEOUT_MS + 3_000
        })
        if (s.fresh) {
          this.progress.done()
          return true
        }
      } catch {
        /* still starting */
      }
      if (Date.now() >= deadlineMs) {
        this.progress.done()
        return false
      }
      await sleep(POLL_INTERVAL_MS)
    }
  }

  async status(): Promise<ClusterNodeState[]> {
    const file = this.read()
    return await Promise.all(
      file.nodes.map(async (n) => {
        const dir = new DataDir(join(this.dir, n.datadir))
        const pid = this.runningPid(n.index)
        let status: NodeStatus | undefined
        if (pid !== undefined && existsSync(dir.cookieFile)) {
          try {
            status = await AdminClient.fromDataDir(dir).get<NodeStatus>('/v1/status', { timeoutMs: STATUS_TIMEOUT_MS })
          } catch {
            /* starting or stopping */
          }
        }
        return {
          index: n.index,
          name: n.name,
          peerId: n.peerId,
          pid: pid ?? null,
          running: pid !== undefined,
          datadir: dir.path,
          api: n.api,
          listen: n.listen,
          connectedPeers: status?.connectedPeerCount ?? null,
          cut: status?.cut ?? false
        }
      })
    )
  }

  /** Sends `signal` to node `index` and waits until its process is gone. */
  async signalNode(index: number, signal: 'SIGTERM' | 'SIGKILL'): Promise<boolean> {
    const pid = this.runningPid(index)
    if (pid === undefined) return false
    process.kill(pid, signal)
    const deadlineMs = Date.now() + STOP_TIMEOUT_MS
    while (isAlive(pid)) {
      if (Date.now() >= deadlineMs) {
        if (signal === 'SIGKILL') throw new UserError(`node ${index} (pid ${pid}) did not exit after SIGKILL`)
        process.kill(pid, 'SIGKILL')
      }
      await sleep(POLL_INTERVAL_MS / 2)
    }
    return true
  }

  /** SIGKILLs every running node at once, without waiting: for clean-up on the way out (Ctrl-C, a time limit). */
  killAllNow(): void {
    if (!this.exists()) return
    for (const index of this.indexes()) {
      const pid = this.runningPid(index)
      try {
        if (pid !== undefined) process.kill(pid, 'SIGKILL')
      } catch {
        /* gone already */
      }
    }
  }

  /** Removes the cluster's files; refuses while a node runs. */
  destroy(): void {
    const file = this.read()
    const running = file.nodes.filter((n) => this.runningPid(n.index) !== undefined)
    if (running.length > 0)
      throw new UserError(`nodes ${running.map((n) => n.index).join(', ')} are still running; run cluster down first`)
    for (const n of file.nodes) rmSync(join(this.dir, n.datadir), { recursive: true, force: true })
    rmSync(join(this.dir, CLUSTER_FILE), { force: true })
    if (readdirSync(this.dir).length === 0) rmdirSync(this.dir)
  }
}

/** The arguments that run this poolboard's CLI: the built JS, or the TS source through tsx. */
function cliInvocation(): string[] {
  const js = fileURLToPath(new URL('../cli.js', import.meta.url))
  if (existsSync(js)) return [js]
  return ['--import', 'tsx', fileURLToPath(new URL('../cli.ts', import.meta.url))]
}

/** True if `pid` is alive and (where /proc exists) is a poolboard started on `datadir`: pids get reused. */
function isNodeProcess(pid: number, datadir: string): boolean {
  if (!isAlive(pid)) return false
  const cmdlineFile = `/proc/${pid}/cmdline`
  if (!existsSync('/proc/self/cmdline')) return true
  try {
    return readFileSync(cmdlineFile, 'utf8').split('\0').includes(datadir)
  } catch {
    return false
  }
}

/** Ports that were free a moment ago on 127.0.0.1, distinct. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      async () =>
        await new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer()
          server.once('error', reject)
          server.listen(0, '127.0.0.1', () => {
            resolve(server)
          })
        })
    )
  )
  const ports = servers.map((s) => (s.address() as { port: number }).port)
  await Promise.all(
    servers.map(async (s) => {
      await new Promise((resolve) => s.close(resolve))
    })
  )
  return ports
}

function lastLines(file: string, count: number): string {
  if (!existsSync(file)) return '(no output)'
  const lines = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .filter((l) => l.trim() !== '')
  return lines.slice(-count).join(' | ') || '(no output)'
}
