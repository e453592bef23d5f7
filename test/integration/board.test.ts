import assert from 'node:assert/strict'
import { ApiCallError } from '../../daemon/api/client.js'
import { BoardClient, text, type CommittedEntry } from '../helpers/board.js'
import { TestCluster } from '../helpers/cluster.js'
import { cli, waitFor } from '../helpers/process.js'

/** Every node's committed log must be the same list: index, term, type and data. */
function assertSameLogs(logs: Map<number, CommittedEntry[]>): void {
  const [first, ...rest] = [...logs.entries()]
  for (const [index, log] of rest) assert.deepEqual(log, first[1], `node ${index}'s log equals node ${first[0]}'s`)
}

describe('the board on real nodes (5 processes, lab mode)', function () {
  this.timeout(300_000)
  let cluster: TestCluster
  let board: BoardClient
  const all = [1, 2, 3, 4, 5]

  before(async () => {
    cluster = await TestCluster.up(5, ['--lab'])
    board = new BoardClient(cluster)
    await board.waitForLeader()
  })
  after(async () => {
    await cluster?.destroy()
  }) // unset if before() failed

  it('every acknowledged append is on every node exactly once, in the same order, while the leader is killed and restarted', async () => {
    const acknowledged = new Map<string, number>()
    let leader = await board.waitForLeader()
    let stop = false
    const worker = async (w: number): Promise<void> => {
      for (let seq = 0; !stop; seq++) {
        const payload = `w${w}-${seq}`
        const order = [leader, ...all.filter((i) => i !== leader)]
        const result = await board.append(payload, order)
        if (result !== undefined) acknowledged.set(payload, result.index)
        else leader = await board.waitForLeader().catch(() => leader)
      }
    }
    const workers = [1, 2, 3, 4].map(worker)
    await waitFor('50 acknowledged appends', () => acknowledged.size >= 50, 60_000)
    const victim = await board.waitForLeader()
    await cluster.run('kill', String(victim))
    const countAtKill = acknowledged.size
    await waitFor('appends to go on under a new leader', () => acknowledged.size >= countAtKill + 50, 60_000)
    await cluster.run('start', String(victim))
    const countAtRestart = acknowledged.size
    await waitFor('more appends after the restart', () => acknowledged.size >= countAtRestart + 30, 60_000)
    stop = true
    await Promise.all(workers)

    const highest = Math.max(...acknowledged.values())
    await board.waitApplied(all, highest)
    const logs = new Map<number, CommittedEntry[]>()
    for (const i of all)
      logs.set(
        i,
        (await board.entries(i)).filter((e) => e.index <= highest)
      )
    assertSameLogs(logs)
    const raw = logs.get(1)!.filter((e) => e.type === 'raw')
    const counts = new Map<string, number>()
    for (const e of raw) counts.set(text(e), (counts.get(text(e)) ?? 0) + 1)
    for (const [payload, index] of acknowledged) {
      assert.equal(counts.get(payload), 1, `${payload} appears exactly once`)
      assert.equal(
        text(raw.find((e) => e.index === index)!),
        payload,
        `${payload} is at the index it was acknowledged with`
      )
    }
  })

  it('a cut-off node catches up after heal', async () => {
    await cluster.run('cut', '5')
    const leader = await board.waitForLeader(30_000, [1, 2, 3, 4])
    let last = 0
    for (let i = 0; i < 20; i++) last = (await board.appendOn(leader, `while-5-was-cut-${i}`)).index
    assert.ok((await board.status(5)).applied < last, 'node 5 did not get the entries while cut off')
    await cluster.run('heal', '5')
    await board.waitApplied([5], last)
    assert.deepEqual(
      (await board.entries(5)).filter((e) => e.index <= last),
      (await board.entries(leader)).filter((e) => e.index <= last)
    )
  })

  it('a minority cannot commit', async () => {
    const leader = await board.waitForLeader()
    const others = all.filter((i) => i !== leader)
    // Cut three nodes off (the leader stays with one other node): no side holds 3 of 5 votes.
    const isolated = others.slice(0, 3)
    for (const i of isolated) await cluster.run('cut', String(i))
    const appliedBefore = (await board.status(leader)).applied
    await assert.rejects(
      board.appendOn(leader, 'minority-write', 15_000),
      (err: unknown) => err instanceof ApiCallError && ['timeout', 'not-leader'].includes(err.code)
    )
    for (const i of [leader, others[3]])
      assert.equal((await board.status(i)).applied, appliedBefore, `node ${i} applied nothing new`)
    for (const i of isolated) await cluster.run('heal', String(i))
    // The unacknowledged write may still commit once a majority is back (Raft allows it); what
    // matters is that every node ends with the same log.
    const newLeader = await board.waitForLeader()
    const after = await board.appendOn(newLeader, 'after-heal')
    await board.waitApplied(all, after.index)
    const logs = new Map<number, CommittedEntry[]>()
    for (const i of all)
      logs.set(
        i,
        (await board.entries(i)).filter((e) => e.index <= after.index)
      )
    assertSameLogs(logs)
  })

  it('board log shows the typed entries', async () => {
    const out = await cli(['board', 'log', '--datadir', cluster.datadir(1), '--limit', '3'])
    assert.match(out, /initialize voters node\d/)
    assert.match(out, /noop/)
  })
})

describe('learners and snapshots (5 processes: 3 voters, 2 learners)', function () {
  this.timeout(300_000)
  let cluster: TestCluster
  let board: BoardClient

  before(async () => {
    cluster = await TestCluster.up(5, ['--lab', '--voters', '3', '--set', 'snapshot-entries=200'])
    board = new BoardClient(cluster)
    await board.waitForLeader()
  })
  after(async () => {
    await cluster?.destroy()
  }) // unset if before() failed

  it('a learner receives the log but never votes or leads', async () => {
    const leader = await board.waitForLeader()
    assert.ok([1, 2, 3].includes(leader), 'a voter leads')
    const status = await board.status(4)
    assert.deepEqual(status.learners.map((l) => l.name).sort(), ['node4', 'node5'])
    let last = 0
    for (let i = 0; i < 10; i++) last = (await board.appendOn(leader, `to-learners-${i}`)).index
    await board.waitApplied([4, 5], last)
    // With two of three voters gone, the learners do not make a quorum: nothing commits, and no learner leads.
    const down = [1, 2, 3].filter((i) => i !== leader).slice(0, 2)
    for (const i of down) await cluster.run('stop', String(i))
    await assert.rejects(board.appendOn(leader, 'needs-a-voter-quorum', 15_000))
    for (const i of [4, 5]) {
      const s = await board.status(i)
      assert.notEqual(s.role, 'leader')
      assert.notEqual(s.role, 'candidate')
    }
    for (const i of down) await cluster.run('start', String(i))
    await board.waitForLeader()
  })

  it('a node stopped while many entries commit catches up through a snapshot', async () => {
    const leader = await board.waitForLeader()
    const lagger = [1, 2, 3].find((i) => i !== leader)!
    const laggerApplied = (await board.status(lagger)).applied
    await cluster.run('stop', String(lagger))
    let last = 0
    for (let batch = 0; batch < 20; batch++) {
      const results = await Promise.all(
        Array.from({ length: 40 }, async (_, i) => await board.appendOn(leader, `bulk-${batch}-${i}`))
      )
      last = Math.max(last, ...results.map((r) => r.index))
    }
    assert.ok(
      (await board.status(leader)).snapshotIndex > laggerApplied,
      'the leader no longer holds in memory what the stopped node lacks'
    )
    await cluster.run('start', String(lagger))
    await board.waitApplied([lagger], last)
    assert.match(cluster.log(leader), /sending a snapshot of the board history/)
    assert.deepEqual(
      (await board.entries(lagger)).filter((e) => e.index <= last),
      (await board.entries(leader)).filter((e) => e.index <= last)
    )
  })
})
