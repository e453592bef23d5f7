import { runModel, DEFAULT_MODEL, POLICIES } from './daemon/lab/interactivity/model.js'
import { checkOnBoard } from './daemon/lab/interactivity/board-check.js'
for (const n of [4, 16]) for (const p of [0.9, 0.7, 0.5]) for (const policy of POLICIES) {
  const r = runModel({ ...DEFAULT_MODEL, horizonMin: 2 * 1440, members: n, uptime: p, policy, seed: 3 })
  const t0 = performance.now()
  try { const c = checkOnBoard(r); console.log(n, p, policy, 'ok', c, r.ops.length, (performance.now() - t0).toFixed(0) + 'ms') } catch (e) { console.log(n, p, policy, 'FAIL', (e as Error).message) }
}
