import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { TestCluster } from '../helpers/cluster.js'
import { cli, cliJson, exitOf, isAlive, killChild, runCli, spawnCli, tempDir, waitFor } from '../helpers/process.js'

interface Status {
  peerId: string
  connectedPeers: Array<{ peerId: string }>
  connectedPeerCount: number
  uptimeSeconds: number
  version: string
  memberKey: string
  listenAddresses: string[]
}

describe('a local cluster of real node processes', function () {
  this.timeout(120_000)
  let cluster: TestCluster

  before(async () => {
    cluster = await TestCluster.up(3)
  })
  after(async () => {
    await cluster?.destroy()
  }) // unset if before() failed

  it('comes up with every node connected to every other', async () => {
    const nodes = await cluster.status()
    assert.equal(nodes.length, 3)
    for (const n of nodes) {
      assert.equal(n.running, true, `node ${n.index} runs`)
      assert.equal(n.connectedPeers, 2, `node ${n.index} sees both others`)
      assert.ok(n.pid !== null && isAlive(n.pid))
      assert.match(n.api, /^127\.0\.0\.1:\d+$/)
    }
    const status = await cliJson<Status>(['status', '--datadir', cluster.datadir(1)])
    assert.equal(status.peerId, nodes[0].peerId)
    assert.match(status.memberKey, /^[0-9a-f]{64}$/)
    assert.deepEqual(new Set(status.connectedPeers.map((p) => p.peerId)), new Set([nodes[1].peerId, nodes[2].peerId]))
  })

  it('a second up on a running cluster says so and starts nothing', async () => {
    const before = (await cluster.status()).map((n) => n.pid)
    const out = await cli(['cluster', 'up', '--dir', cluster.dir])
    assert.match(out, /already running/)
    assert.deepEqual(
      (await cluster.status()).map((n) => n.pid),
      before
    )
  })

  it('a node killed with SIGKILL and started again reconnects with the same peer id', async () => {
    const before = await cluster.node(2)
    await cluster.run('kill', '2')
    assert.ok(before.pid !== null && !isAlive(before.pid))
    await waitFor('the others to notice node 2 is gone', async () => (await cluster.node(1)).connectedPeers === 1)
    await cluster.run('start', '2')
    const nodes = await cluster.waitFullyConnected()
    assert.equal(nodes[1].peerId, before.peerId)
    assert.notEqual(nodes[1].pid, before.pid)
    const status = await cliJson<Status>(['status', '--datadir', cluster.datadir(2)])
    assert.equal(status.peerId, before.peerId)
  })

  it('a second node on the same data directory exits at once with a clear message', async () => {
    const result = await runCli(['start', '--datadir', cluster.datadir(1)])
    assert.notEqual(result.code, 0)
    assert.match(result.stderr, /another poolboard node is already running on .*node1 \(pid \d+\)/)
    assert.equal((await cluster.node(1)).running, true)
  })

  it('a node that is not a member is refused, and the refusal is logged', async () => {
    const temp = tempDir()
    try {
      const node1 = await cluster.node(1)
      const listen = readFileSync(join(cluster.datadir(1), 'poolboard.conf'), 'utf8').match(/^listen=(.*)$/m)?.[1]
      assert.ok(listen !== undefined)
      const strangerDir = join(temp.path, 'stranger')
      const made = await cliJson<{ peerId: string }>([
        'init',
        '--datadir',
        strangerDir,
        '--name',
        'stranger',
        '--listen',
        '127.0.0.1:0',
        '--api',
        '127.0.0.1:0',
        '--member',
        `node1 ${node1.peerId} ${listen}`
      ])
      // The stranger lists node1 and itself, so it keeps dialing node1; node1 does not list it.
      const config = readFileSync(join(strangerDir, 'poolboard.conf'), 'utf8')
      writeFileSync(join(strangerDir, 'poolboard.conf'), config + `member=stranger ${made.peerId} 127.0.0.1:9\n`)
      const stranger = spawnCli(['start', '--datadir', strangerDir, '--quiet'])
      try {
        await waitFor(
          'node1 to log the refusal',
          () => cluster.log(1).includes(made.peerId) && cluster.log(1).includes('not a pool member')
        )
        const status = await cliJson<Status>(['status', '--datadir', cluster.datadir(1)])
        assert.ok(!status.connectedPeers.some((p) => p.peerId === made.peerId))
        assert.equal(status.connectedPeerCount, 2)
      } finally {
        await killChild(stranger)
      }
    } finally {
      temp.cleanup()
    }
  })

  it('down stops every node and leaves no process behind', async () => {
    const pids = (await cluster.status()).map((n) => n.pid).filter((p): p is number => p !== null)
    assert.equal(pids.length, 3)
    assert.match(await cluster.run('down'), /stopped 3 nodes/)
    for (const pid of pids) assert.equal(isAlive(pid), false, `pid ${pid} is gone`)
    for (const n of await cluster.status()) {
      assert.equal(n.running, false)
      assert.equal(existsSync(join(n.datadir, '.cookie')), false, 'the cookie is removed at exit')
    }
  })
})

/** A one-member pool: init, then the node's own member line in its config (a node with no members does not start). */
async function initAlone(dir: string): Promise<void> {
  await cli(['init', '--datadir', dir, '--listen', '127.0.0.1:0', '--api', '127.0.0.1:0'])
  appendFileSync(join(dir, 'poolboard.conf'), await cli(['member-line', '--datadir', dir]))
}

describe('a node in the foreground', function () {
  this.timeout(60_000)

  it('runs until SIGTERM, then closes everything, removes its cookie and exits 0', async () => {
    const temp = tempDir()
    try {
      const dir = join(temp.path, 'node')
      await initAlone(dir)
      const node = spawnCli(['start', '--datadir', dir])
      let again: ChildProcess | undefined
      let stdout = ''
      node.stdout?.on('data', (chunk: Buffer) => {
        stdout += chunk.toString()
      })
      try {
        await waitFor('the cookie', () => existsSync(join(dir, '.cookie')))
        assert.match(readFileSync(join(dir, '.cookie'), 'utf8'), /^__cookie__:[0-9a-f]{64}$/)
        await waitFor('the node to log that it started', () => stdout.includes('node started'))
        node.kill('SIGTERM')
        assert.equal(await exitOf(node), 0)
        assert.equal(existsSync(join(dir, '.cookie')), false)
        assert.equal(existsSync(join(dir, 'poolboard.pid')), false)
        assert.match(readFileSync(join(dir, 'logs', 'poolboard.log'), 'utf8'), /"msg":"stopped"/)
        // It starts again on the same directory: the lock was released.
        again = spawnCli(['start', '--datadir', dir, '--quiet'])
        await waitFor("the restarted node's cookie", () => existsSync(join(dir, '.cookie')))
        again.kill('SIGINT')
        assert.equal(await exitOf(again), 0)
      } finally {
        await killChild(node)
        await killChild(again)
      }
    } finally {
      temp.cleanup()
    }
  })

  it('stops cleanly and exits 0 on a SIGTERM that arrives while it is still starting', async () => {
    const temp = tempDir()
    try {
      const dir = join(temp.path, 'node')
      await initAlone(dir)
      const node = spawnCli(['start', '--datadir', dir, '--quiet'])
      try {
        // The pid file is written as soon as the lock is taken, long before the node is up.
        await waitFor('the pid file', () => existsSync(join(dir, 'poolboard.pid')), 30_000, 1)
        node.kill('SIGTERM')
        assert.equal(await exitOf(node), 0)
        assert.equal(existsSync(join(dir, '.cookie')), false)
        assert.equal(existsSync(join(dir, 'poolboard.pid')), false)
        const log = readFileSync(join(dir, 'logs', 'poolboard.log'), 'utf8')
        assert.match(
          log,
          /"msg":"signal while starting: stopping once started"/,
          'the signal came while the node was starting'
        )
        assert.match(log, /"msg":"stopped"/)
      } finally {
        await killChild(node)
      }
    } finally {
      temp.cleanup()
    }
  })

  it('refuses to start on a directory that was never initialized', async () => {
    const temp = tempDir()
    try {
      const result = await runCli(['start', '--datadir', join(temp.path, 'none')])
      assert.equal(result.code, 2, 'a usage error (docs/operations.md, exit codes)')
      assert.match(result.stderr, /^poolboard: .* is not a poolboard data directory/)
    } finally {
      temp.cleanup()
    }
  })
})
