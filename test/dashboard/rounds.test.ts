import assert from 'node:assert/strict'
import { ApiError, type Route } from '../../daemon/api/server.js'
import { ActivityLog } from '../../daemon/dashboard/rounds.js'

/** The dashboard's recent rounds (docs/dashboard.md): outcome and latency of each round run through the API, bounded. */
describe('dashboard: recent rounds', () => {
  const request = (body: unknown): Parameters<Route['handler']>[0] => ({ query: new URLSearchParams(), body })

  it("records a round's outcome, latency and result, or the error code the API answered", async () => {
    let changes = 0
    const log = new ActivityLog(() => {
      changes++
    })
    const pay = log.wrap({ method: 'POST', path: '/v1/pool/pay', handler: async () => ({ state: 3, index: 9 }) })
    const failing = log.wrap({
      method: 'POST',
      path: '/v1/pool/partition',
      handler: async () => {
        throw new ApiError(409, 'refused', 'node3 refused')
      }
    })
    assert.deepEqual(
      await pay.handler(request({ to: 'node2', amountSats: 1500 })),
      { state: 3, index: 9 },
      'the answer is passed through'
    )
    await assert.rejects(failing.handler(request({ with: ['node2', 'node3'] })), /node3 refused/)
    assert.deepEqual(
      log.rounds.map((r) => [r.kind, r.what, r.outcome, r.detail]),
      [
        ['pay', 'pay 1500 sats to node2', 'ok', 'state 3, board index 9'],
        ['partition', 'partition with node2, node3', 'refused', 'node3 refused']
      ]
    )
    assert.ok(log.rounds.every((r) => r.latencyMs >= 0 && Number.isSafeInteger(r.latencyMs)))
    assert.equal(changes, 2, 'each round tells the page')
  })

  it('leaves reads alone and keeps only the last rounds', async () => {
    const log = new ActivityLog(() => {}, 3)
    const status: Route = { method: 'GET', path: '/v1/pool/status', handler: async () => ({}) }
    assert.equal(log.wrap(status), status)
    const kick = log.wrap({ method: 'POST', path: '/v1/pool/kick', handler: async () => ({}) })
    for (let i = 0; i < 5; i++) await kick.handler(request({ member: `node${i}` }))
    assert.deepEqual(
      log.rounds.map((r) => r.what),
      ['kick node2', 'kick node3', 'kick node4']
    )
  })
})
