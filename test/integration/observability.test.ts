import assert from 'node:assert/strict'
import { appendFileSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { TestCluster } from '../helpers/cluster.js'
import { cli, exitOf, killChild, spawnCli, tempDir, waitFor } from '../helpers/process.js'

interface Line {
  level: number
  msg: string
  cat?: string
  peer?: string
  suppressed?: number
}

const lines = (text: string): Line[] =>
  text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Line)

/**
 * Logs and metrics as an operator reads them (docs/operations.md, "Logs" and "Metrics"): readable
 * lines on a terminal, JSON in the file; debug categories that log; member names rather than peer
 * ids; a flapping link that cannot flood the log (COMMON quality bar: every log line a peer can
 * cause is rate-limited); metrics named by Prometheus conventions.
 */
describe('node logs and metrics', function () {
  this.timeout(180_000)

  it('start writes one readable line per record to the terminal and JSON to the log file', async () => {
    const temp = tempDir()
    const dir = join(temp.path, 'node')
    await cli(['init', '--datadir', dir, '--listen', '127.0.0.1:0', '--api', '127.0.0.1:0'])
    appendFileSync(join(dir, 'poolboard.conf'), await cli(['member-line', '--datadir', dir]))
    const node = spawnCli(['start', '--datadir', dir, '--log-format', 'text'])
    let stdout = ''
    node.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
    })
    try {
      await waitFor('the node to log that it started', () => stdout.includes('node started'))
      node.kill('SIGTERM')
      assert.equal(await exitOf(node), 0)
      const first = stdout.split('\n').find((l) => l.includes('node started'))!
      assert.match(
        first,
        /^\d\d:\d\d:\d\d\.\d{3} INFO {2}node started peerId=\S+ api=127\.0\.0\.1:\d+ members=1 lab=false$/
      )
      assert.doesNotMatch(stdout, /^\{/m, 'no JSON on the terminal')
      assert.ok(
        lines(readFileSync(join(dir, 'logs', 'poolboard.log'), 'utf8')).some((l) => l.msg === 'node started'),
        'the file holds JSON lines'
      )
    } finally {
      await killChild(node)
      temp.cleanup()
    }
  })

  describe('on a two-node cluster with debug=net,board,pool,defense', () => {
    let cluster: TestCluster
    before(async () => {
      cluster = await TestCluster.up(2, [
        '--pool',
        '--set',
        'debug=net,board,pool,defense',
        '--set',
        'block-interval-s=0'
      ])
    })
    after(async () => {
      await cluster?.destroy()
    })

    it('each category logs at debug level, and the lines name members, not peer ids', async () => {
      await cli(['pool', 'partition', '--datadir', cluster.datadir(1), '--with', 'node2'])
      const log = await waitFor('node1 to log debug lines of every category', () => {
        const all = lines(cluster.log(1))
        const cats = new Set(all.filter((l) => l.level === 20).map((l) => l.cat))
        return ['net', 'board', 'pool', 'defense'].every((c) => cats.has(c)) ? all : undefined
      })
      const node2 = await cluster.node(2)
      assert.ok(log.some((l) => l.peer === 'node2' || JSON.stringify(l).includes('"node2"')))
      assert.equal(cluster.log(1).includes(node2.peerId), false, "node2's peer id never appears in node1's log")
    })

    it('/metrics follows Prometheus conventions: counters _total, _seconds histograms, has_leader, pool gauges', async () => {
      const api = (await cluster.node(1)).api
      const text = await (await fetch(`http://${api}/metrics`)).text()
      const types = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]))
      const ours = [...types].filter(([n]) => n.startsWith('poolboard_'))
      for (const [name, type] of ours) {
        if (type === 'counter') assert.match(name, /_total$/, `counter ${name}`)
        // prom-client's own nodejs_active_*_total are gauges; ours never end in _total unless counters.
        else if (!name.startsWith('poolboard_nodejs_'))
          assert.doesNotMatch(name, /_total$/, `${type} ${name} is not a counter`)
      }
      assert.equal(
        ours.some(([n]) => n.startsWith('poolboard_process_process_')),
        false
      )
      assert.equal(types.get('poolboard_process_cpu_seconds_total'), 'counter')
      for (const h of [
        'poolboard_board_commit_seconds',
        'poolboard_pool_round_seconds',
        'poolboard_pool_partition_seconds'
      ]) {
        assert.equal(types.get(h), 'histogram', h)
        assert.match(text, new RegExp(`^${h}_bucket\\{.*le="0\\.1".*\\} \\d+$`, 'm'), `${h} has buckets`)
      }
      const value = (line: RegExp): number => Number(line.exec(text)?.[1] ?? NaN)
      assert.equal(value(/^poolboard_board_has_leader (\d+)$/m), 1)
      assert.ok(value(/^poolboard_board_leader_changes_total (\d+)$/m) >= 1)
      assert.ok(value(/^poolboard_board_commit_seconds_count (\d+)$/m) >= 1)
      assert.equal(value(/^poolboard_pool_rounds_total\{kind="partition",outcome="accepted"\} (\d+)$/m), 1)
      assert.equal(value(/^poolboard_pool_partition_seconds_count (\d+)$/m), 1)
      assert.equal(value(/^poolboard_pool_balance_sats\{member="node2"\} (\d+)$/m), 100_000)
      assert.equal(value(/^poolboard_pool_open_pools (\d+)$/m), 1, 'the partition is open, the root frozen')
      for (const c of [
        'poolboard_gossip_received_total',
        'poolboard_signature_cache_hits_total',
        'poolboard_board_proposals_failed_total'
      ])
        assert.equal(types.get(c), 'counter', c)
      // node2 signed the genesis and the partition node1 asked for.
      const node2 = await (await fetch(`http://${(await cluster.node(2)).api}/metrics`)).text()
      assert.ok(
        Number(/^poolboard_pool_signatures_total (\d+)$/m.exec(node2)?.[1]) >= 2,
        'node2 counts the requests it signed'
      )
      assert.match(node2, /^# TYPE poolboard_pool_refusals_total counter$/m)
      // The example dashboard asks only for metrics the node has.
      const dashboard = readFileSync(new URL('../../docs/grafana-dashboard.json', import.meta.url), 'utf8')
      const asked = new Set([...dashboard.matchAll(/poolboard_[a-z0-9_]+/g)].map((m) => m[0].replace(/_bucket$/, '')))
      for (const name of asked) assert.ok(types.has(name), `docs/grafana-dashboard.json asks for ${name}`)
    })

    it('a member that cuts itself off makes at most one connected/disconnected line per interval', async () => {
      const before = lines(cluster.log(1)).length
      await cluster.run('cut', '2')
      // node1 keeps dialing node2, whose node accepts and drops each connection.
      const after = await waitFor(
        'node1 to dial the cut-off node2 six times',
        () => {
          const all = lines(cluster.log(1)).slice(before)
          return all.filter((l) => l.msg === 'dialing a member' && l.peer === 'node2').length >= 6 ? all : undefined
        },
        60_000
      )
      const link = after.filter(
        (l) => (l.msg === 'member connected' || l.msg === 'member disconnected') && l.peer === 'node2'
      )
      assert.ok(link.length <= 3, `${link.length} link lines for six dials: ${JSON.stringify(link)}`)
      await cluster.run('heal', '2')
    })
  })
})
