import assert from 'node:assert/strict'
import { cpSync, openSync, readdirSync, readSync, rmSync, statSync, truncateSync, writeSync, closeSync } from 'node:fs'
import { join } from 'node:path'
import { BoardClient } from '../helpers/board.js'
import { TestCluster } from '../helpers/cluster.js'
import { tempDir, waitFor } from '../helpers/process.js'

/** The largest write-ahead log of a node's LevelDB (what holds its latest writes after a kill -9). */
function walOf(datadir: string): string {
  const db = join(datadir, 'db')
  const logs = readdirSync(db)
    .filter((f) => f.endsWith('.log'))
    .map((f) => join(db, f))
  assert.ok(logs.length > 0, `no .log file in ${db}`)
  return logs.sort((a, b) => statSync(b).size - statSync(a).size)[0]
}

type Corruption =
  | 'truncate the log to half'
  | 'flip 16 bytes of the log'
  | 'delete the log'
  | 'restore an older copy of db/'

// Rule (issue 11, "lost durable state is detected, refused and repaired"): a node whose store lost
// writes it had made durable says so in one line, does not vote until it has them again, and catches
// up from the leader (which resends below its match); it ends with exactly the cluster's board.
describe('hostile: a node whose store lost writes detects it and catches up', function () {
  this.timeout(600_000)
  let cluster: TestCluster
  let board: BoardClient
  let seq = 0
  const backup = tempDir('poolboard-db-copy-')

  before(async () => {
    cluster = await TestCluster.up(3, ['--lab'])
    board = new BoardClient(cluster)
  })
  after(async () => {
    await cluster?.destroy()
    backup.cleanup()
  })

  const appendSome = async (n: number): Promise<number> => {
    let last = 0
    for (let i = 0; i < n; i++) {
      const leader = await board.waitForLeader()
      const r = await board.append(`entry ${seq++}`, [leader, 1, 2, 3])
      if (r !== undefined) last = r.index
    }
    return last
  }

  for (const corruption of [
    'truncate the log to half',
    'flip 16 bytes of the log',
    'delete the log',
    'restore an older copy of db/'
  ] as Corruption[]) {
    it(corruption, async () => {
      const leader = await board.waitForLeader()
      const victim = [1, 2, 3].find((i) => i !== leader)!
      const others = [1, 2, 3].filter((i) => i !== victim)
      const dir = cluster.datadir(victim)
      const copy = join(backup.path, `db-${victim}-${seq}`)
      if (corruption === 'restore an older copy of db/') {
        await cluster.run('stop', String(victim))
        cpSync(join(dir, 'db'), copy, { recursive: true })
        await cluster.run('start', String(victim))
      }
      const acked = await appendSome(12)
      await board.waitApplied([1, 2, 3], acked)
      await cluster.run('kill', String(victim))
      if (corruption === 'truncate the log to half') {
        const wal = walOf(dir)
        truncateSync(wal, Math.floor(statSync(wal).size / 2))
      } else if (corruption === 'flip 16 bytes of the log') {
        const wal = walOf(dir)
        const fd = openSync(wal, 'r+')
        const at = Math.floor(statSync(wal).size / 2)
        const bytes = Buffer.alloc(16)
        readSync(fd, bytes, 0, 16, at)
        for (let i = 0; i < 16; i++) bytes[i] ^= 0xff
        writeSync(fd, bytes, 0, 16, at)
        closeSync(fd)
      } else if (corruption === 'delete the log') {
        rmSync(walOf(dir))
      } else {
        rmSync(join(dir, 'db'), { recursive: true })
        cpSync(copy, join(dir, 'db'), { recursive: true })
      }
      // The board keeps committing without the victim, and goes on past what it had.
      const later = await appendSome(12)
      const logFrom = cluster.log(victim).length
      await cluster.run('start', String(victim))
      const { commit } = await board.status(others[0])
      await board.waitApplied([victim], Math.max(later, commit), 90_000)
      const expected = await board.entries(others[0])
      const got = await board.entries(victim)
      assert.deepEqual(got.slice(0, expected.length), expected, "the victim serves exactly the cluster's board")
      const log = cluster.log(victim).slice(logFrom) // this start's lines only
      const lostLines = log.split('\n').filter((l) => l.includes('the store lost writes'))
      const status = await board.status(victim)
      // LevelDB may recover everything (a cut or a flip past the last record): then nothing was lost.
      if (lostLines.length > 0) {
        assert.equal(lostLines.length, 1, 'one line names what is missing')
        assert.match(lostLines[0], /entries up to \d+; the store holds up to \d+/)
        assert.match(log, /caught up past what the store had lost; voting again/)
      } else {
        assert.notEqual(corruption, 'restore an older copy of db/', 'an older copy always lacks the later entries')
        assert.notEqual(corruption, 'delete the log', 'a deleted log always loses its entries')
      }
      const beyond = log.split('\n').filter((l) => l.includes('commit-beyond-log')).length
      assert.ok(beyond <= 5, `${beyond} lines about the leader's commit beyond the log (rate-limited)`)
      assert.equal(status.quarantined.length, 0)
      await waitFor('every node to be connected', async () =>
        (await cluster.status()).every((n) => n.running && n.connectedPeers === 2)
      )
      process.stderr.write(
        `      ${corruption}: lost-writes line: ${lostLines.length > 0 ? 'yes' : 'no (LevelDB recovered all)'}, caught up to ${status.applied}\n`
      )
    })
  }
})
