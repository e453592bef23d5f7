import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync
} from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { freePorts } from '../daemon/cluster/index.js'
import { sleep, waitFor } from '../daemon/host/wait.js'
import { payloadMaker, type Target } from './load.js'

/**
 * An etcd cluster on loopback for side-by-side benchmarks: one `etcd` process per member, each with
 * its own data directory in a temporary directory, free client and peer ports, a static
 * initial-cluster configuration and otherwise etcd's defaults (synced WAL writes, heartbeat 100 ms,
 * election timeout 1 s). Writes go through etcd's gRPC gateway (`POST /v3/kv/put`).
 */

const ETCD_PACKAGE = 'etcd-server'
const APT_TIMEOUT_MS = 10 * 60_000
const START_TIMEOUT_MS = 60_000
const STOP_TIMEOUT_MS = 10_000

type Say = (line: string) => void

/** The first executable named `name` on $PATH (or in /usr/bin and /usr/sbin), if any. */
function which(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/sbin']
  for (const dir of dirs) {
    if (dir === '') continue
    const file = join(dir, name)
    try {
      accessSync(file, constants.X_OK)
      return file
    } catch {
      /* not here */
    }
  }
  return undefined
}

async function exec(
  file: string,
  args: string[],
  timeoutMs: number,
  env: NodeJS.ProcessEnv = process.env
): Promise<{ ok: boolean; out: string }> {
  return await new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, env }, (err, stdout, stderr) => {
      resolve({ ok: err === null, out: `${stdout}${stderr}`.trim() })
    })
  })
}

/** True if something accepts TCP connections on 127.0.0.1:`port`. */
async function listening(port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    socket.setTimeout(1_000)
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('timeout', () => {
      socket.destroy()
      resolve(false)
    })
    socket.once('error', () => {
      resolve(false)
    })
  })
}

/**
 * The path of the `etcd` binary. When there is none, installs Debian's `etcd-server` package with
 * apt-get (and says so on `say`); if the package's service started an etcd on the default port
 * 2379, stops it, since it would compete for the CPU (the benchmark's own members use other ports).
 */
export async function ensureEtcd(say: Say): Promise<{ binary: string; version: string; installed: boolean }> {
  let binary = which('etcd')
  let installed = false
  if (binary === undefined) {
    if (process.getuid?.() !== 0)
      throw new Error(
        `etcd is not installed and installing it needs root: run \`sudo apt-get install -y ${ETCD_PACKAGE}\` first`
      )
    say(`etcd not found: installing Debian's ${ETCD_PACKAGE} package (apt-get install -y ${ETCD_PACKAGE}) ...`)
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    let result = await exec('apt-get', ['install', '-y', '--no-install-recommends', ETCD_PACKAGE], APT_TIMEOUT_MS, env)
    if (!result.ok) {
      say('  apt-get install failed; refreshing the package lists (apt-get update) and trying again ...')
      const update = await exec('apt-get', ['update'], APT_TIMEOUT_MS, env)
      if (!update.ok) throw new Error(`apt-get update failed:\n${update.out.split('\n').slice(-5).join('\n')}`)
      result = await exec('apt-get', ['install', '-y', '--no-install-recommends', ETCD_PACKAGE], APT_TIMEOUT_MS, env)
    }
    if (!result.ok)
      throw new Error(`apt-get install -y ${ETCD_PACKAGE} failed:\n${result.out.split('\n').slice(-5).join('\n')}`)
    binary = which('etcd')
    if (binary === undefined)
      throw new Error(`${ETCD_PACKAGE} is installed but there is no etcd binary on PATH or in /usr/bin`)
    installed = true
    say(`  installed ${binary}`)
    if (await listening(2379)) {
      say('  the package started an etcd service on 127.0.0.1:2379: stopping it')
      const stopped =
        (await exec('systemctl', ['stop', 'etcd'], 30_000)).ok || (await exec('service', ['etcd', 'stop'], 30_000)).ok
      if (!stopped)
        say(
          '  could not stop it (systemctl and service failed); it keeps running on 2379, the benchmark uses other ports'
        )
    }
  }
  const v = await exec(binary, ['--version'], 10_000)
  const version = /etcd Version:\s*(\S+)/.exec(v.out)?.[1] ?? 'unknown'
  return { binary, version, installed }
}

interface EtcdMember {
  readonly index: number
  readonly name: string
  readonly clientPort: number
  readonly peerPort: number
  readonly dataDir: string
  readonly logFile: string
  proc: ChildProcess | null
}

interface EtcdStatus {
  memberId: string
  leader: string
  raftTerm: number
  raftIndex: number
  raftAppliedIndex: number
}

/** Every member's etcd process, in this process, so that an emergency exit can kill them synchronously. */
const LIVE = new Set<ChildProcess>()

/** SIGKILLs every etcd process any EtcdCluster of this process started and has not seen exit. */
export function killAllEtcdNow(): void {
  for (const proc of LIVE) {
    try {
      proc.kill('SIGKILL')
    } catch {
      /* already gone */
    }
  }
}

export class EtcdCluster {
  readonly base = mkdtempSync(join(tmpdir(), 'poolboard-bench-etcd-'))
  readonly members: EtcdMember[] = []
  private readonly token = `poolboard-bench-${randomBytes(4).toString('hex')}`
  private readonly keyPrefix = `bench/${randomBytes(4).toString('hex')}/`
  private keyCounter = 0

  private constructor(readonly binary: string) {}

  /**
   * Creates the cluster's directories and ports; `start()` starts it. Kept apart so that a caller
   * can register `down()` for clean-up before any process exists.
   */
  static async create(binary: string, size: number): Promise<EtcdCluster> {
    const c = new EtcdCluster(binary)
    const ports = await freePorts(2 * size)
    for (let i = 0; i < size; i++) {
      const name = `etcd${i + 1}`
      const dataDir = join(c.base, name)
      c.members.push({
        index: i + 1,
        name,
        clientPort: ports[2 * i],
        peerPort: ports[2 * i + 1],
        dataDir,
        logFile: join(c.base, `${name}.log`),
        proc: null
      })
    }
    mkdirSync(c.base, { recursive: true })
    return c
  }

  private args(m: EtcdMember): string[] {
    const client = `http://127.0.0.1:${m.clientPort}`
    const peer = `http://127.0.0.1:${m.peerPort}`
    return [
      '--name',
      m.name,
      '--data-dir',
      m.dataDir,
      '--listen-client-urls',
      client,
      '--advertise-client-urls',
      client,
      '--listen-peer-urls',
      peer,
      '--initial-advertise-peer-urls',
      peer,
      '--initial-cluster',
      this.members.map((x) => `${x.name}=http://127.0.0.1:${x.peerPort}`).join(','),
      '--initial-cluster-token',
      this.token,
      '--initial-cluster-state',
      'new',
      '--logger',
      'zap',
      '--log-outputs',
      'stderr'
    ]
  }

  private spawnMember(m: EtcdMember): void {
    const out = openSync(m.logFile, 'a')
    try {
      // ETCD_* variables from the environment would override the flags: leave them out.
      const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD_')))
      const proc = spawn(this.binary, this.args(m), { stdio: ['ignore', out, out], env })
      LIVE.add(proc)
      proc.once('exit', () => {
        LIVE.delete(proc)
        if (m.proc === proc) m.proc = null
      })
      m.proc = proc
    } finally {
      closeSync(out)
    }
  }

  /** Starts every member and waits until all answer and one leads. */
  async start(): Promise<void> {
    for (const m of this.members) this.spawnMember(m)
    const deadline = Date.now() + START_TIMEOUT_MS
    for (const m of this.members) await this.waitHealthy(m, deadline)
    await this.leader(Math.max(1_000, deadline - Date.now()))
  }

  private lastLog(m: EtcdMember, lines = 3): string {
    if (!existsSync(m.logFile)) return '(no output)'
    return readFileSync(m.logFile, 'utf8').trim().split('\n').slice(-lines).join('\n')
  }

  private async waitHealthy(m: EtcdMember, deadlineMs: number): Promise<void> {
    while (Date.now() < deadlineMs) {
      if (m.proc === null) throw new Error(`${m.name} exited during start-up:\n${this.lastLog(m)}`)
      try {
        const res = await fetch(`http://127.0.0.1:${m.clientPort}/health`, { signal: AbortSignal.timeout(2_000) })
        if (res.ok && ((await res.json()) as { health?: string }).health === 'true') return
      } catch {
        /* not up yet */
      }
      await sleep(100)
    }
    throw new Error(`${m.name} was not healthy in time (log: ${m.logFile}):\n${this.lastLog(m)}`)
  }

  async status(m: EtcdMember): Promise<EtcdStatus | undefined> {
    if (m.proc === null) return undefined
    try {
      const res = await fetch(`http://127.0.0.1:${m.clientPort}/v3/maintenance/status`, {
        method: 'POST',
        body: '{}',
        headers: { 'content-type': 'application/json' },
        signal: AbortSignal.timeout(2_000)
      })
      if (!res.ok) return undefined
      const s = (await res.json()) as {
        header?: { member_id?: string }
        leader?: string
        raftTerm?: string
        raftIndex?: string
        raftAppliedIndex?: string
      }
      if (s.header?.member_id === undefined || s.leader === undefined) return undefined
      return {
        memberId: s.header.member_id,
        leader: s.leader,
        raftTerm: Number(s.raftTerm ?? 0),
        raftIndex: Number(s.raftIndex ?? 0),
        raftAppliedIndex: Number(s.raftAppliedIndex ?? s.raftIndex ?? 0)
      }
    } catch {
      return undefined
    }
  }

  /** The member that leads, by asking every running member whom it sees leading. */
  async leader(timeoutMs = 30_000): Promise<EtcdMember> {
    return await waitFor(
      'an etcd leader',
      async () => {
        for (const m of this.members) {
          const s = await this.status(m)
          if (s !== undefined && s.leader !== '0' && s.leader === s.memberId) return m
        }
        return undefined
      },
      timeoutMs,
      50
    )
  }

  running(): EtcdMember[] {
    return this.members.filter((m) => m.proc !== null)
  }

  pid(m: EtcdMember): number | undefined {
    return m.proc?.pid
  }

  /** `POST /v3/kv/put` on member `m`: a fresh key every call, `valueBytes` bytes of value. */
  putTarget(m: EtcdMember, valueBytes: number): Target {
    const value = payloadMaker(valueBytes)
    return {
      host: '127.0.0.1',
      port: m.clientPort,
      path: '/v3/kv/put',
      headers: {},
      body: () =>
        JSON.stringify({
          key: Buffer.from(this.keyPrefix + String(this.keyCounter++)).toString('base64'),
          value: value().toString('base64')
        })
    }
  }

  /** SIGKILL, at once. */
  kill(m: EtcdMember): void {
    if (m.proc === null) throw new Error(`${m.name} is not running`)
    m.proc.kill('SIGKILL')
  }

  /** Waits for `m`'s process to be gone. */
  async waitExited(m: EtcdMember, timeoutMs = STOP_TIMEOUT_MS): Promise<void> {
    await waitFor(`${m.name} to exit`, () => m.proc === null, timeoutMs, 20)
  }

  /** Starts a stopped member again on its data directory and waits until it has applied what the leader had committed. */
  async restart(m: EtcdMember): Promise<void> {
    await this.waitExited(m)
    this.spawnMember(m)
    const deadline = Date.now() + START_TIMEOUT_MS
    await this.waitHealthy(m, deadline)
    const leader = await this.leader(Math.max(1_000, deadline - Date.now()))
    const target = (await this.status(leader))?.raftIndex ?? 0
    await waitFor(
      `${m.name} to catch up to ${target}`,
      async () => ((await this.status(m))?.raftAppliedIndex ?? 0) >= target,
      Math.max(0, deadline - Date.now()),
      50
    )
  }

  /** SIGTERM every member (SIGKILL after 10 s) and delete the data. Safe to call twice. */
  async down(): Promise<void> {
    for (const m of this.members) {
      try {
        m.proc?.kill('SIGTERM')
      } catch {
        /* gone */
      }
    }
    const deadline = Date.now() + STOP_TIMEOUT_MS
    while (this.members.some((m) => m.proc !== null) && Date.now() < deadline) await sleep(50)
    for (const m of this.members) {
      try {
        m.proc?.kill('SIGKILL')
      } catch {
        /* gone */
      }
    }
    while (this.members.some((m) => m.proc !== null) && Date.now() < deadline + 5_000) await sleep(20)
    rmSync(this.base, { recursive: true, force: true })
  }
}
