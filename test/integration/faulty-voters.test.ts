import assert from 'node:assert/strict'
import { BoardClient, text } from '../helpers/board.js'
import { TestCluster } from '../helpers/cluster.js'
import { waitFor } from '../helpers/process.js'

// Rule (docs/raft.md, "Lying voters"): with faulty-voters=1 a board of 5 voters needs 4 of them
// (floor((5 + 1) / 2) + 1): it commits, over the real transport and with Ed25519-signed
// acknowledgements, with one member down; with two down its leader steps down (check-quorum) and
// nothing commits; once a fourth member is back it commits again, and every member applies the
// same log.
describe('the board with faulty-voters=1 on real nodes (5 processes)', function () {
  this.timeout(300_000)
  let cluster: TestCluster
  let board: BoardClient
  const all = [1, 2, 3, 4, 5]

  before(async () => {
    cluster = await TestCluster.up(5, ['--lab', '--set', 'faulty-voters=1'])
    board = new BoardClient(cluster)
    await board.waitForLeader()
  })
  after(async () => {
    await cluster?.destroy()
  })

  it('commits with 4 of 5 voters, not with 3, and every member applies the same log', async () => {
    const leader = await board.waitForLeader()
    const first = await board.appendOn(leader, 'five-of-five')
    await board.waitApplied(all, first.index)

    const [a, b] = all.filter((i) => i !== leader)
    await cluster.run('kill', String(a))
    const second = await board.appendOn(leader, 'four-of-five')
    const up = all.filter((i) => i !== a)
    await board.waitApplied(up, second.index)

    await cluster.run('kill', String(b))
    const three = all.filter((i) => i !== a && i !== b)
    await waitFor(
      'the leader to step down: 3 of 5 voters are not a quorum of 4',
      async () => {
        for (const i of three) if ((await board.status(i)).role === 'leader') return false
        return true
      },
      60_000
    )

    await cluster.run('start', String(a))
    const next = await board.waitForLeader(60_000, [...three, a])
    const third = await board.appendOn(next, 'four-again')
    await cluster.run('start', String(b))
    await board.waitApplied(all, third.index, 120_000)
    const logs = await Promise.all(all.map(async (i) => (await board.entries(i)).filter((e) => e.index <= third.index)))
    for (const log of logs.slice(1)) assert.deepEqual(log, logs[0])
    assert.deepEqual(logs[0]!.filter((e) => e.type === 'raw').map(text), ['five-of-five', 'four-of-five', 'four-again'])
  })
})
