import assert from 'node:assert/strict'
import { TestCluster } from '../helpers/cluster.js'
import { waitFor } from '../helpers/process.js'
import { assertConserved, find, PoolDriver } from '../helpers/pool.js'

/**
 * Merging partitions back, on five real node processes: a payment, a partition while two members
 * are offline (after a payment that failed for want of them), a payment inside the partition, the
 * two come back, a merge refused while one is still away, the merge, and a payment among all five.
 * Rule (docs/pool.md, "Merging partitions back"): one unanimous state N+1 of the frozen pool folds
 * the partitions' latest balances back into it; the partitions take nothing more.
 */
describe('merging partitions back on real nodes (5 processes)', function () {
  this.timeout(300_000)
  const all = [1, 2, 3, 4, 5]
  const online = [1, 2, 3]
  const BALANCE = 100_000
  const TOTAL = 5 * BALANCE
  let cluster: TestCluster
  let pool: PoolDriver
  let partition = ''

  /**
   * `pool merge` on node `i`, again while its only refusal is the failed payment's promise (that
   * round is over 10 s, the clock slack, after its deadline); returns the last result.
   */
  async function merge(i: number, ...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return await waitFor(
      "a merge not blocked by the failed payment's round",
      async () => {
        const r = await pool.run(i, 'pool', 'merge', ...args)
        return /in a round that may still complete/.test(r.stderr) ? undefined : r
      },
      60_000,
      2_000
    )
  }

  before(async () => {
    cluster = await TestCluster.up(5, ['--pool', '--balance', String(BALANCE), '--set', 'block-interval-s=0'])
    pool = new PoolDriver(cluster)
    await pool.waitAgreed(all, 'state 0', (s) => s.poolId !== null)
  })
  after(async () => {
    await cluster?.destroy()
  })

  it('a payment, then with node4 and node5 stopped a failed payment and a partition among the other three, who pay inside it', async () => {
    assert.equal((await pool.run(1, 'pool', 'pay', '--to', 'node2', '--amount', '1500')).code, 0)
    await pool.waitAgreed(all, 'state 1', (s) => s.state === 1)
    await cluster.run('stop', '4')
    await cluster.run('stop', '5')
    // nodes 1-3 now hold a promise of a state 2 of the root pool that can never complete
    const failed = await pool.run(1, 'pool', 'pay', '--to', 'node3', '--amount', '100', '--timeout', '2')
    assert.notEqual(failed.code, 0)
    assert.match(failed.stderr, /node4, node5 did not sign before the deadline/)
    const r = await pool.json<{ pool: string }>(1, 'pool', 'partition', '--with', 'node2,node3', '--pay', 'node3:500')
    partition = r.pool
    assert.equal((await pool.run(2, 'pool', 'pay', '--to', 'node1', '--amount', '700')).code, 0)
    const s = await pool.waitAgreed(online, 'the partition at state 1', (s) => find(s, partition)?.state === 1)
    assert.equal(s.tree?.status, 'frozen')
    // a frozen pool takes no new state, and nothing in it says merge yet: node4, node5 are away
    const refused = await merge(1, '--timeout', '2')
    assert.notEqual(refused.code, 0)
    assert.match(
      refused.stderr,
      /could not make state 2 of the root pool, merging 1 partition: .*node4, node5 did not sign before the deadline/
    )
    assert.match(refused.stderr, /a merge needs every member of the pool online/)
  })

  it('with node4 back but node5 away the merge still fails, naming node5; with both back it folds the partition into the root pool', async () => {
    await cluster.run('start', '4')
    await pool.waitAgreed([1, 2, 3, 4], 'node4 caught up', (s) => find(s, partition)?.state === 1)
    const one = await merge(4, '--timeout', '2')
    assert.notEqual(one.code, 0)
    assert.match(one.stderr, /node5 did not sign before the deadline/)
    assert.doesNotMatch(one.stderr, /node[1-4] did not sign/)

    await cluster.run('start', '5')
    await pool.waitAgreed(all, 'node5 caught up', (s) => find(s, partition)?.state === 1)
    const r = await merge(4, '--json')
    assert.equal(r.code, 0, r.stderr)
    const merged = JSON.parse(r.stdout) as { state: number; merged: string[]; balances: Record<string, number> }
    assert.equal(merged.state, 2)
    assert.equal(merged.merged.length, 1)
    const expected = {
      node1: BALANCE - 1500 - 500 + 700,
      node2: BALANCE + 1500 - 700,
      node3: BALANCE + 500,
      node4: BALANCE,
      node5: BALANCE
    }
    assert.deepEqual(merged.balances, expected)
    const s = await pool.waitAgreed(all, 'the merge', (s) => s.state === 2)
    assert.equal(s.tree?.status, 'open')
    assert.equal(find(s, partition)?.status, 'merged')
    assert.deepEqual(s.balances, expected)
    for (const m of s.members) assert.equal(m.pool, 'root', `${m.name}'s funds are back in the root pool`)
    assertConserved(s, TOTAL)
  })

  it('a payment among all five works again; the merged partition takes nothing more', async () => {
    const r = await pool.run(5, 'pool', 'pay', '--to', 'node1', '--amount', '250')
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /paid 250 sats to node1: state 3 of the root pool/)
    const s = await pool.waitAgreed(all, 'state 3', (s) => s.state === 3)
    assert.equal(s.balances.node5, BALANCE - 250)
    assertConserved(s, TOTAL)
    const again = await pool.run(1, 'pool', 'merge')
    assert.notEqual(again.code, 0)
    assert.match(again.stderr, /cannot merge: the root pool is open: only a frozen pool/)
  })
})
