import assert from 'node:assert/strict'
import { join } from 'node:path'
import { AdminClient, ApiCallError } from '../../daemon/api/client.js'
import { DataDir } from '../../daemon/host/datadir.js'
import type { RunRecord } from '../../daemon/lab/campaign/runner.js'
import { BoardClient } from '../helpers/board.js'
import { TestCluster } from '../helpers/cluster.js'
import { LabRuns } from '../helpers/lab.js'
import { PoolDriver } from '../helpers/pool.js'
import { runCli, tempDir } from '../helpers/process.js'

/**
 * The attack lab on real node processes (docs/lab.md). A coalition of board hosts drops the
 * committed statement S1 (A with B) and leads the board while C, who was offline, catches up;
 * then A offers C a partition S2 spending its output again. Each scenario is one seeded run of
 * seven nodes through `poolboard lab coalition-drop`; the seeds only pick the cast, and the
 * outcomes below hold for any cast (the coalition answers the defenses' questions first).
 */
describe('the attack lab: coalition drop on 7 real nodes', function () {
  this.timeout(300_000)
  let lab: LabRuns
  before(() => {
    lab = new LabRuns()
  })
  after(() => {
    lab?.cleanup()
  }) // unset if before() failed

  const one = async (coalition: number, defenses: string, seed: number): Promise<RunRecord> => {
    const { records } = await lab.play({ coalition: String(coalition), defenses, seed })
    assert.equal(records.length, 1)
    return records[0]
  }
  const defensesOf = (r: RunRecord): string[] => [...new Set(r.detections.map((d) => d.defense))].sort()

  it('with no defense, a majority coalition fools C: it signs S2, which its board accepts, and nobody notices', async () => {
    const r = await one(4, 'none', 101)
    assert.equal(r.coalition.led, true, 'a coalition member led the board')
    assert.equal(r.fooled, true, `C signed S2: ${JSON.stringify(r.s2)}`)
    assert.equal(r.acceptedByC, true, "S2 is an accepted partition on C's board")
    assert.deepEqual(r.detections, [])
  })

  it('with no adversary (coalition 0), C is never fooled, defenses on or off: its board holds S1', async () => {
    const { records } = await lab.play({ coalition: '0', defenses: 'none,all', seed: 102 })
    assert.equal(records.length, 2)
    for (const r of records) {
      assert.equal(r.fooled, false, `${r.defense}: C did not sign`)
      assert.equal(r.cRefusal?.code, 'conflict', `${r.defense}: C refused naming S1: ${r.cRefusal?.reason}`)
      assert.match(r.cRefusal!.reason, new RegExp(`statement ${r.s1!.statementId.slice(0, 16)}`))
    }
  })

  it('quorum read stops a minority coalition: C compares its history with a majority and finds S1 where it holds a no-op', async () => {
    const r = await one(2, 'quorum-read', 103)
    assert.equal(r.fooled, false)
    assert.equal(r.cRefusal?.code, 'quorum-read', `C refused by quorum read: ${r.cRefusal?.reason}`)
    assert.match(
      r.cRefusal!.reason,
      new RegExp(`holds another board entry at index ${r.s1!.index} than mine: a statement entry`)
    )
    assert(
      r.detections.some((d) => d.role === 'C' && d.defense === 'quorum-read'),
      'C detected it'
    )
    assert.deepEqual(defensesOf(r), ['quorum-read'])
  })

  it('hash chain: honest followers refuse the rewritten log before C is back, prove it with S1, and C refuses S2 naming it', async () => {
    // A majority coalition: a minority one can lose the board to the honest members once they stop
    // following its leader, and C then finds S1 on its own board instead of through the proof.
    const r = await one(4, 'hash-chain', 104)
    assert.equal(r.fooled, false)
    assert.equal(r.cRefusal?.code, 'conflict-reported', `C refused on a reported statement: ${r.cRefusal?.reason}`)
    assert.match(r.cRefusal!.reason, new RegExp(`statement ${r.s1!.statementId.slice(0, 16)}`))
    const early = r.detections.filter((d) => d.defense === 'hash-chain' && d.how === 'detected' && d.atMs < 0)
    assert(early.length > 0, 'honest followers raised the alarm before the offer')
    assert(early.every((d) => d.role !== 'C'))
    assert(
      r.learned.some((d) => d.role === 'C' && d.defense === 'hash-chain'),
      'C learned the proof when it came back'
    )
  })

  it('gossip check: C asks the members it reaches, B reports S1, and C refuses even against a majority coalition', async () => {
    const r = await one(4, 'gossip-check', 105)
    assert.equal(r.fooled, false)
    assert.equal(r.cRefusal?.code, 'conflict-reported', `C refused on a reported statement: ${r.cRefusal?.reason}`)
    assert.match(r.cRefusal!.reason, new RegExp(`reports statement ${r.s1!.statementId.slice(0, 16)}`))
    assert.deepEqual(defensesOf(r), ['gossip-check'])
  })

  it('evidence only detects after the fact: C is fooled, and honest members prove A equivocated', async () => {
    const r = await one(2, 'evidence', 106)
    assert.equal(r.fooled, true, 'evidence does not stop C signing')
    const found = r.detections.filter((d) => d.defense === 'evidence' && d.how === 'detected')
    assert(found.length > 0, 'an honest member detected the equivocation')
    assert(found.some((d) => d.message.includes(`${r.cast.a} signed two conflicting statements`)))
    assert(
      found.every((d) => d.atMs >= 0),
      'only once S2 was offered'
    )
  })
})

describe('the attack lab: a censoring leader (3 real nodes)', function () {
  this.timeout(180_000)
  let cluster: TestCluster
  let pool: PoolDriver
  let board: BoardClient
  before(async () => {
    cluster = await TestCluster.up(3, ['--lab', '--pool', '--set', 'block-interval-s=0'])
    pool = new PoolDriver(cluster)
    board = new BoardClient(cluster)
  })
  after(async () => {
    await cluster?.destroy()
  }) // unset if before() failed

  it('a censored statement does not commit while the censor leads, and does once an honest member leads', async () => {
    await board.transferLeadTo(1, { timeoutMs: 30_000, intervalMs: 500 })
    const censor = await runCli(['lab', 'censor', '--member', 'node2', '--datadir', cluster.datadir(1)])
    assert.equal(censor.code, 0, censor.stderr)
    assert.match(censor.stdout, /statements signed by node2 are dropped/)
    const refused = await pool.run(2, 'pool', 'partition', '--with', 'node3')
    assert.notEqual(refused.code, 0, 'the censor leader dropped it')
    assert.match(refused.stderr, /did not commit the entry/)
    for (const i of [1, 2, 3]) assert.deepEqual((await pool.status(i)).partitions, [], `node${i} holds no partition`)
    await board.transferLeadTo(3, { timeoutMs: 30_000, intervalMs: 500 })
    const accepted = await pool.json<{ statementId: string; index: number }>(2, 'pool', 'partition', '--with', 'node3')
    await pool.waitAgreed([1, 2, 3], 'the partition', (s) =>
      s.partitions.some((p) => p.ref === `partition/${accepted.statementId}`)
    )
  })
})

describe('the attack lab: a node without lab mode refuses every adversarial command', function () {
  this.timeout(120_000)
  let cluster: TestCluster
  before(async () => {
    cluster = await TestCluster.up(2, ['--pool', '--set', 'block-interval-s=0'])
  })
  after(async () => {
    await cluster?.destroy()
  }) // unset if before() failed

  it('lab equivocate, lab censor, lab drop, raw board entries: each refused, saying it needs lab mode', async () => {
    const dir = cluster.datadir(1)
    const equivocate = await runCli(['lab', 'equivocate', '--with', 'node2', '--datadir', dir])
    assert.notEqual(equivocate.code, 0)
    assert.match(equivocate.stderr, /equivocation is a lab behaviour: start the node with --lab/)
    const censor = await runCli(['lab', 'censor', '--member', 'node2', '--datadir', dir])
    assert.notEqual(censor.code, 0)
    assert.match(censor.stderr, /censoring is an adversarial lab behaviour/)
    const client = AdminClient.fromDataDir(new DataDir(dir))
    await assert.rejects(
      client.get('/v1/lab/censor'),
      (err: unknown) => err instanceof ApiCallError && err.status === 403 && err.code === 'lab-only'
    )
    await assert.rejects(
      client.post('/v1/lab/equivocate', { with: ['node2'] }),
      (err: unknown) => err instanceof ApiCallError && err.status === 403
    )
    const raw = await runCli(['board', 'append', '--data', 'x', '--datadir', dir])
    assert.notEqual(raw.code, 0)
    assert.match(raw.stderr, /lab mode/)
    const drop = await runCli(['lab', 'drop', '--statement', '0123456789abcdef', '--datadir', cluster.datadir(2)])
    assert.notEqual(drop.code, 0)
    assert.match(drop.stderr, /is not a lab node \(lab=0 .*\): dropping a statement is an adversarial lab behaviour/)
    const defense = await client.get<{ enabled: Record<string, boolean>; labCoalition: boolean }>('/v1/defense')
    assert.deepEqual(
      defense.enabled,
      { quorumRead: true, hashChain: true, gossipCheck: true, evidence: true },
      'every defense is on by default'
    )
    assert.equal(defense.labCoalition, false)
  })

  it('a coalition member or a lab answer delay cannot be configured without lab mode', async () => {
    const temp = tempDir()
    try {
      for (const setting of ['lab-coalition=1', 'lab-answer-delay-ms=100']) {
        const r = await runCli([
          'cluster',
          'create',
          '--nodes',
          '1',
          '--dir',
          join(temp.path, setting.replace(/\W/g, '')),
          '--set',
          setting
        ])
        assert.notEqual(r.code, 0, setting)
        assert.match(r.stderr, /needs lab mode \(lab=1\)/)
      }
    } finally {
      temp.cleanup()
    }
  })
})
