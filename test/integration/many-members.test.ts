import assert from 'node:assert/strict'
import { TestCluster } from '../helpers/cluster.js'
import { assertConserved, PoolDriver } from '../helpers/pool.js'

/**
 * Sixteen real node processes on loopback, five of them voters. Rule checked (docs/protocol.md,
 * "Gossip among many members"): every member's gossip reaches every other member whatever their
 * addresses; before, gossipsub's IP colocation penalty graylisted members sharing one address once
 * more than ten did, and a 16-member pool could not even be created.
 */
describe('a pool of 16 members on real nodes (16 processes, 5 voters)', function () {
  this.timeout(300_000)
  const N = 16
  const all = Array.from({ length: N }, (_, i) => i + 1)
  const BALANCE = 100_000
  let cluster: TestCluster
  let pool: PoolDriver

  before(async () => {
    cluster = await TestCluster.up(N, [
      '--voters',
      '5',
      '--pool',
      '--balance',
      String(BALANCE),
      '--set',
      'block-interval-s=0'
    ])
    pool = new PoolDriver(cluster)
  })
  after(async () => {
    await cluster?.destroy()
  }) // unset if before() failed

  it('the pool is created: every node shows state 0 with all 16 members', async () => {
    const s = await pool.waitAgreed(all, 'state 0', (s) => s.poolId !== null)
    assert.equal(s.state, 0)
    assert.equal(Object.keys(s.balances).length, N)
    assertConserved(s, N * BALANCE)
  })

  it('a payment signed by all 16 members (a learner pays): every node shows state 1', async () => {
    const r = await pool.run(N, 'pool', 'pay', '--to', 'node1', '--amount', '2500')
    assert.equal(r.code, 0, r.stderr)
    const s = await pool.waitAgreed(all, 'state 1', (s) => s.state === 1)
    assert.equal(s.balances[`node${N}`], BALANCE - 2500)
    assert.equal(s.balances.node1, BALANCE + 2500)
    assertConserved(s, N * BALANCE)
  })
})
