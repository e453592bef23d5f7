import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { openDatabase } from '../../storage/database.js'
import { rewriteStoredEntry } from '../../daemon/lab/campaign/rewrite.js'
import { BoardClient, text } from '../helpers/board.js'
import { TestCluster } from '../helpers/cluster.js'

describe('a member that rewrites a committed entry and takes the lead (5 processes, lab mode)', function () {
  this.timeout(300_000)
  let cluster: TestCluster
  let board: BoardClient

  before(async () => {
    cluster = await TestCluster.up(5, ['--lab'])
    board = new BoardClient(cluster)
    await board.waitForLeader()
  })
  after(async () => {
    await cluster?.destroy()
  }) // unset if before() failed

  it('honest members refuse its log, stop following it, elect around it, and keep the true entry', async () => {
    // Node 5 must not lead while it is still honest: the test needs it to take the lead later.
    await board.transferLeadTo(1)
    const leader = 1
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
    const config = readFileSync(configFile, 'utf8')
    const lying = config.replace(/^lab-coalition=0$/m, 'lab-coalition=1')
    assert.notEqual(lying, config, "node5's config had lab-coalition=0 to turn on")
    writeFileSync(configFile, lying)
    await cluster.run('start', '5')
    await board.waitApplied([5], after.index)

    // Hand it the lead: the honest members grant it, its log looks as up to date as theirs. A
    // transfer can be aborted (an election timeout passes first); ask again until node5 has led or
    // someone already caught it.
    const shunnedBy = async (): Promise<number[]> => {
      const out: number[] = []
      for (const i of [1, 2, 3, 4]) if ((await board.status(i)).shunned.some((m) => m.name === 'node5')) out.push(i)
      return out
    }
    await board.transferLeadTo(5, { until: async () => (await shunnedBy()).length > 0 })

    // Its appends offer a different history at a committed index: the honest members that receive
    // them raise the alarm and stop following it, so an honest member leads again.
    const honest = await board.waitForLeader(60_000, [1, 2, 3, 4])
    const next = await board.appendOn(honest, 'the board goes on')
    await board.waitApplied([1, 2, 3, 4], next.index)
    for (const i of [1, 2, 3, 4]) {
      const entries = await board.entries(i, 'raw')
      assert.ok(
        entries.some((e) => e.index === secret.index && text(e) === 'the entry the liar hides'),
        `node ${i} keeps the true entry`
      )
    }
    const shunners = await shunnedBy()
    assert.ok(shunners.length > 0, 'an honest member stopped following node5')
    for (const i of shunners)
      assert.ok((await board.status(i)).alarms > 0, `node ${i} raised the alarm before it stopped following node5`)
  })
})
