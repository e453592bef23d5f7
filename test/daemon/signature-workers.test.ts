import assert from 'node:assert/strict'
import pino from 'pino'
import { PoolBoard } from '../../board/pool-board.js'
import { SignatureCache } from '../../board/signature-cache.js'
import { signatureChecksOf } from '../../board/signatures.js'
import { SignatureWorkers } from '../../daemon/replica/signature-workers.js'
import { waitFor } from '../../daemon/host/wait.js'
import {
  Harness,
  TestLog,
  genesisEntry,
  partition,
  smallGenesis,
  statementEntry,
  updateEntry
} from '../pool/helpers.js'

describe('signature checks on worker threads', function () {
  this.timeout(60_000)
  const logger = pino({ level: 'silent' })

  it('the checks of an entry are exactly those the board makes: applying after them verifies nothing', async () => {
    // A log with a genesis, an update and a partition, applied once to learn its states.
    const g = smallGenesis(4)
    const reference = new Harness()
    reference.accept(genesisEntry(g))
    const update = updateEntry(reference.state(), 0, 1, 1_000n)
    reference.accept(update)
    const root = reference.state()
    const stmt = statementEntry(partition(root, [0, 2], [root.balances[0], root.balances[2]]))
    reference.accept(stmt)

    const cache = new SignatureCache()
    const workers = new SignatureWorkers(cache, logger, 1, { inlineMaxChecks: 0 })
    try {
      const log = new TestLog()
      const entries = [genesisEntry(g), update, stmt].map((d) => log.add(d))
      await workers.prepare(entries.flatMap(signatureChecksOf))
      const board = new PoolBoard({ signatureCache: cache })
      const before = cache.stats()
      for (const e of entries) assert.equal(board.apply(e).result.outcome, 'accepted')
      const after = cache.stats()
      assert.equal(after.misses - before.misses, 0, 'no signature was verified again while applying')
      assert.equal(
        after.hits - before.hits,
        4 + 4 + 2,
        'every check was a cache hit (4 + 4 state signatures, 2 statement signatures)'
      )
    } finally {
      await workers.stop()
    }
  })

  it('a forged signature is not remembered: the board still refuses the entry itself', async () => {
    const g = smallGenesis(3)
    const h = new Harness()
    h.accept(genesisEntry(g))
    const root = h.state()
    const good = partition(root, [0, 1], [root.balances[0], root.balances[1]])
    const forged = {
      ...good,
      signatures: good.signatures.map((s, i) =>
        i === 0 ? { ...s, signature: s.signature.map((b, k) => (k === 5 ? b ^ 1 : b)) } : s
      )
    }
    const cache = new SignatureCache()
    const workers = new SignatureWorkers(cache, logger, 1, { inlineMaxChecks: 0 })
    try {
      const entry = new TestLog().add(statementEntry(forged))
      const checks = signatureChecksOf(entry)
      await workers.prepare(checks)
      assert.equal(
        cache.knows(checks[0].signature, checks[0].hash, checks[0].key),
        false,
        'the forged signature is not known valid'
      )
      assert.equal(cache.knows(checks[1].signature, checks[1].hash, checks[1].key), true, 'the good one is')
      const applying = new Harness(new PoolBoard({ signatureCache: cache }))
      applying.accept(genesisEntry(g))
      assert.match(applying.reject(statementEntry(forged), /does not verify/).result.reason, /active 0/)
    } finally {
      await workers.stop()
    }
  })

  it('threads start on demand and stop when idle; a few checks are verified inline, with the same result', async () => {
    const g = smallGenesis(6)
    const cache = new SignatureCache()
    const workers = new SignatureWorkers(cache, logger, 1, { inlineMaxChecks: 2, idleStopMs: 50 })
    try {
      assert.equal(workers.startedThreads, 0, 'no thread before there is work')
      const checks = signatureChecksOf(new TestLog().add(genesisEntry(g)))
      await workers.prepare(checks.slice(0, 2))
      assert.equal(workers.startedThreads, 0, 'two checks were verified inline')
      assert.ok(checks.slice(0, 2).every((c) => cache.knows(c.signature, c.hash, c.key)))
      await workers.prepare(checks)
      assert.equal(workers.startedThreads, 1)
      assert.ok(checks.every((c) => cache.knows(c.signature, c.hash, c.key)))
      await waitFor('the idle worker to stop', () => workers.startedThreads === 0 || undefined, 5_000, 10)
    } finally {
      await workers.stop()
    }
  })

  it('after stop, preparing does nothing and never hangs', async () => {
    const workers = new SignatureWorkers(new SignatureCache(), logger, 1)
    await workers.stop()
    await workers.prepare([{ signature: new Uint8Array(64), hash: new Uint8Array(32), key: new Uint8Array(32) }])
  })
})
