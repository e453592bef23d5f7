import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { openDatabase } from '../../storage/database.js'
import { rewriteStoredEntry } from '../../storage/rewrite.js'
import { BoardClient, text } from '../helpers/board.js'
import { TestCluster } from '../helpers/cluster.js'
import { cli, waitFor } from '../helpers/process.js'

describe('a member that rewrites a committed entry and takes the lead (5 processes, lab mode)', function () {
  this.timeout(300_000)
  let cluster: TestCluster
  let board: BoardClient

  before(async () => {
    cluster = await TestCluster.up(5, ['--lab'])
    board = new BoardClient(cluster)
    await board.waitForLeader()
  })
  after(async () => { await cluster.destroy() })

  it('honest members refuse its log, stop following it, elect around it, and keep the true entry', async () => {
    const leader = await board.waitForLeader(30_000, [1, 2, 3, 4])
    const secret = await board.appendOn(leader, 'the entry the liar hides')
    const after = await board.appendOn(leader, 'a later entry')
    await board.waitApplied([1, 2, 3, 4, 5], after.index)

    // Node 5 rewrites its own copy (same index and term, re-hashed chain) and lies from now on.
    await cluster.run('stop', '5')
    const db = await openDatabase(join(cluster.datadir(5), 'db'), { create: false })
    try {
      await rewriteStoredEntry(db, secret.index, new Uint8Array(0))
    } finally {
      await db.close()
    }
    const configFile = join(cluster.datadir(5), 'poolboard.conf')
    writeFileSync(configFile, readFileSync(configFile, 'utf8').replace(/^lab-coalition=0$/m, 'lab-coalition=1'))
    await cluster.run('start', '5')
    await board.waitApplied([5], after.index)

    // Hand it the lead: the honest members grant it, its log looks as up to date as theirs.
    const current = await board.waitForLeader(30_000, [1, 2, 3, 4])
    await cli(['board', 'transfer', 'node5', '--datadir', cluster.datadir(current)])

    // Its appends offer a different history at a committed index: every honest member that
    // receives them raises the alarm and stops following it, so an honest member leads again.
    await waitFor('the honest members to shun node5', async () => {
      for (const i of [1, 2, 3, 4]) if (!((await board.status(i)) as unknown as { shunned: Array<{ name: string }> }).shunned.some((m) => m.name === 'node5')) return false
      return true
    }, 60_000)
    const honest = await board.waitForLeader(60_000, [1, 2, 3, 4])
    const next = await board.appendOn(honest, 'the board goes on')
    await board.waitApplied([1, 2, 3, 4], next.index)
    for (const i of [1, 2, 3, 4]) {
      const entries = await board.entries(i, 'raw')
      assert.ok(entries.some((e) => e.index === secret.index && text(e) === 'the entry the liar hides'), `node ${i} keeps the true entry`)
      assert.ok((await board.status(i)).alarms > 0, `node ${i} raised the alarm`)
    }
  })
})
