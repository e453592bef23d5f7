/**
 * The attack lab's pure parts and its offline rewrite: the run plan (seeds, cast, replay), the
 * defenses' wire codecs and their limits, the coalition's re-hashing of honest appends, the
 * censor, the report, the lab-only settings, and the rewrite of a stopped node's store.
 */
import assert from 'node:assert/strict'
import { encodeBlocksEntry, encodeStatementEntry } from '../../board/entries.js'
import {
  bootstrapState,
  computeEntryHash,
  makeEntry,
  Raft,
  type AppMessage,
  type Entry,
  type Ready
} from '../../board/raft/index.js'
import { SignatureCache } from '../../board/signature-cache.js'
import { toHex } from '../../protocol/bytes.js'
import { DecodeError } from '../../protocol/codec.js'
import { statementId } from '../../protocol/index.js'
import { parseConfig } from '../../daemon/host/config.js'
import { decodeProof, encodeProof } from '../../daemon/defense/hash-chain.js'
import {
  decodeStatementsRequest,
  decodeStatementsResponse,
  encodeStatementsRequest,
  encodeStatementsResponse
} from '../../daemon/defense/ask-members.js'
import {
  decodeDigestRequest,
  decodeDigestResponse,
  digestOf,
  encodeDigestRequest,
  encodeDigestResponse,
  MAX_DIGEST_ENTRIES
} from '../../daemon/defense/quorum-read.js'
import { Censor } from '../../daemon/lab/node/censor.js'
import { coalitionDrop, rehashInbound } from '../../daemon/lab/node/coalition.js'
import {
  checkPlanOptions,
  defenseSettings,
  parseDefenseList,
  parseRangeList,
  planRun,
  planRuns,
  runDirName,
  type LabPlanOptions
} from '../../daemon/lab/campaign/plan.js'
import { renderHtml, renderSummaryTable, renderSvg, summarize } from '../../daemon/lab/campaign/report.js'
import type { RunRecord } from '../../daemon/lab/campaign/runner.js'
import { loadPoolBoard, PoolApplier } from '../../daemon/replica/pool-applier.js'
import { RaftStore } from '../../storage/raft-store.js'
import { rewriteStoredEntry } from '../../daemon/lab/campaign/rewrite.js'
import { Harness, genesisEntry, partition, smallGenesis } from '../pool/helpers.js'
import { tempDatabaseEachTest } from '../helpers/database.js'

const PLAN: LabPlanOptions = {
  members: 7,
  coalitionSizes: [0, 1, 3, 5],
  defenses: ['none', 'all'],
  runs: 3,
  seed: 42,
  order: 'adversarial',
  holdersOffline: false
}

describe('lab: the run plan', () => {
  it('parses ranges and lists of coalition sizes and defense sets, refusing what is out of range', () => {
    assert.deepEqual(parseRangeList('1..5', 0, 16, '--coalition'), [1, 2, 3, 4, 5])
    assert.deepEqual(parseRangeList('0,2..3,2', 0, 16, '--coalition'), [0, 2, 3])
    assert.throws(() => parseRangeList('3..1', 0, 16, '--coalition'), /range 3\.\.1 goes down/)
    assert.throws(() => parseRangeList('1..20', 0, 16, '--coalition'), /outside 0\.\.16/)
    assert.throws(() => parseRangeList('one', 0, 16, '--coalition'), /expected numbers or ranges/)
    assert.deepEqual(parseDefenseList('none,all,none'), ['none', 'all'])
    assert.equal(parseDefenseList('every').length, 6)
    assert.throws(() => parseDefenseList('firewall'), /unknown "firewall"/)
    assert.equal(
      checkPlanOptions({ ...PLAN, coalitionSizes: [6] }),
      '--coalition: 6 is more than 5: B and C are never in the coalition'
    )
    assert.match(checkPlanOptions({ ...PLAN, runs: 1000 }) ?? '', /at most 2000/)
    assert.equal(checkPlanOptions(PLAN), null)
  })

  it('each defense set switches exactly its defenses on', () => {
    assert.deepEqual(Object.values(defenseSettings('none')), ['0', '0', '0', '0'])
    assert.deepEqual(Object.values(defenseSettings('all')), ['1', '1', '1', '1'])
    assert.deepEqual(defenseSettings('hash-chain'), {
      'defense-quorum-read': '0',
      'defense-hash-chain': '1',
      'defense-gossip-check': '0',
      'defense-evidence': '0'
    })
  })

  it('a seed decides the cast: A leads the coalition, B and C are never in it, the coalition answers first', () => {
    const plans = planRuns(PLAN)
    assert.equal(plans.length, 3 * 4 * 2)
    assert.equal(plans[0].seed, 42)
    assert.deepEqual(
      plans.slice(0, 8).map((p) => `${p.coalitionSize}/${p.defense}`),
      ['0/none', '0/all', '1/none', '1/all', '3/none', '3/all', '5/none', '5/all']
    )
    for (const p of plans) {
      assert.equal(p.coalition.length, p.coalitionSize)
      if (p.coalitionSize > 0) assert.equal(p.coalition[0], p.a)
      assert(!p.coalition.includes(p.b) && !p.coalition.includes(p.c), `run ${p.run}: B and C are honest`)
      assert.equal(new Set([p.a, p.b, p.c]).size, 3)
      assert.deepEqual(
        new Set(p.answerOrder.slice(0, p.coalitionSize)),
        new Set(p.coalition),
        'the coalition answers first'
      )
      assert.equal(p.leader === null, p.coalitionSize === 0)
    }
    assert.equal(new Set(plans.map((p) => p.seed)).size, plans.length, 'every run has its own seed')
  })

  it('a run replays from its record: --runs 1 with its seed plays the same cast', () => {
    for (const p of planRuns(PLAN).slice(5, 12)) {
      const again = planRun(0, p.seed, p.coalitionSize, p.defense, PLAN)
      assert.deepEqual({ ...again, run: p.run, replay: '' }, { ...p, replay: '' })
      assert.match(
        p.replay,
        new RegExp(`--coalition ${p.coalitionSize} --defenses ${p.defense} --runs 1 --seed ${p.seed} `)
      )
      assert.deepEqual(
        planRuns({ ...PLAN, coalitionSizes: [p.coalitionSize], defenses: [p.defense], runs: 1, seed: p.seed })[0]
          .coalition,
        p.coalition
      )
    }
  })

  it('names run directories from 1, four digits, in the order runs are played', () => {
    assert.equal(runDirName(0), 'run-0001')
    assert.equal(runDirName(41), 'run-0042')
    const names = planRuns(PLAN).map((p) => runDirName(p.run))
    assert.deepEqual([...names].sort(), names)
  })
})

describe("lab: the defenses' wire formats", () => {
  const h = new Harness()
  h.accept(genesisEntry(smallGenesis()))
  const s1 = partition(h.state(), [0, 1], [100_000n, 200_000n])

  it('digest requests and answers round-trip; a range over the limit is refused, naming it', () => {
    assert.deepEqual(decodeDigestRequest(encodeDigestRequest({ from: 3, to: 9 })), { from: 3, to: 9 })
    assert.throws(
      () => decodeDigestRequest(encodeDigestRequest({ from: 1, to: MAX_DIGEST_ENTRIES + 1 })),
      (err: unknown) => err instanceof DecodeError && /digest request: to/.test(err.message)
    )
    assert.throws(() => decodeDigestRequest(encodeDigestRequest({ from: 0, to: 1 })), /from: expected an index >= 1/)
    const entries = [
      makeEntry(new Uint8Array(32), 1, 1, 'normal', new Uint8Array(0)),
      makeEntry(new Uint8Array(32), 2, 1, 'normal', encodeStatementEntry(s1))
    ]
    const answer = { applied: 5, from: 1, entries: entries.map(digestOf).map(({ index: _index, ...d }) => d) }
    assert.deepEqual(decodeDigestResponse(encodeDigestResponse(answer)), answer)
    assert.equal(answer.entries[0].kind, 0, 'a leader no-op')
    assert.equal(answer.entries[1].kind, 4, 'a statement entry')
    assert.throws(
      () => decodeDigestResponse(encodeDigestResponse({ ...answer, applied: 1 })),
      /entries beyond the applied index/
    )
  })

  it('a digest compares content, not the stored chain hash: the same entry under another chain has the same digest', () => {
    const data = encodeBlocksEntry(3)
    const a = digestOf(makeEntry(new Uint8Array(32), 4, 2, 'normal', data))
    const b = digestOf(makeEntry(new Uint8Array(32).fill(9), 4, 2, 'normal', data))
    assert.deepEqual(a, b)
    assert.notDeepEqual(
      digestOf(makeEntry(new Uint8Array(32), 4, 2, 'normal', new Uint8Array(0))).contentHash,
      a.contentHash
    )
  })

  it('statement queries and answers, and hash-chain proofs, round-trip', () => {
    assert.deepEqual(decodeStatementsRequest(encodeStatementsRequest(s1.spent)), s1.spent)
    const answered = decodeStatementsResponse(encodeStatementsResponse([{ index: 7, statement: s1 }]))
    assert.equal(answered[0].index, 7)
    assert.equal(toHex(statementId(answered[0].statement)), toHex(statementId(s1)))
    const proof = {
      index: 9,
      localTerm: 2,
      localHash: new Uint8Array(32).fill(1),
      offeredTerm: 3,
      offeredHash: new Uint8Array(32).fill(2),
      offeredBy: '12D3KooWPEZY1p5MfZi8PRywVuDgoddgLmiuhj7K4t7yKe9cc5S9',
      term: 3,
      statements: [{ index: 7, statement: s1 }]
    }
    const back = decodeProof(encodeProof(proof))
    assert.deepEqual({ ...back, statements: back.statements.map((s) => s.index) }, { ...proof, statements: [7] })
    assert.throws(() => decodeProof(Uint8Array.of(2)), /board alarm proof: version/)
  })
})

describe('lab: the coalition and the censor', () => {
  /** A log view over plain entries, as the core gives the hook. */
  function view(entries: Entry[]): Parameters<typeof rehashInbound>[1] {
    const at = (i: number): Entry | undefined => entries.find((e) => e.index === i)
    return {
      entryAt: at,
      termAt: (i: number) => at(i)?.term ?? null,
      hashAt: (i: number) => at(i)?.hash ?? null
    } as unknown as Parameters<typeof rehashInbound>[1]
  }
  function chain(datas: Uint8Array[], term = 1): Entry[] {
    const out: Entry[] = []
    let prev: Uint8Array = new Uint8Array(32)
    datas.forEach((d, i) => {
      const e = makeEntry(prev, i + 1, term, 'normal', d)
      out.push(e)
      prev = e.hash
    })
    return out
  }
  const honest = chain([Uint8Array.of(1), Uint8Array.of(2), Uint8Array.of(3), Uint8Array.of(4)])
  const doctored = chain([Uint8Array.of(1), Uint8Array.of(2), new Uint8Array(0), Uint8Array.of(4)])

  it("re-bases an honest leader's append on the coalition member's own chain: held entries are its own, new ones chain from them", () => {
    const fifth = makeEntry(honest[3].hash, 5, 1, 'normal', Uint8Array.of(5))
    const m: AppMessage = {
      type: 'app',
      from: 'h',
      to: 'c',
      term: 1,
      prevIndex: 2,
      prevTerm: 1,
      prevHash: honest[1].hash,
      entries: [honest[2], honest[3], fifth],
      commit: 5
    }
    const out = rehashInbound(m, view(doctored)) as AppMessage
    assert.equal(out.entries[0], doctored[2], 'the entry it holds (index and term equal) is its own, doctored one')
    assert.equal(out.entries[1], doctored[3])
    assert.deepEqual(out.entries[2].hash, computeEntryHash(doctored[3].hash, 5, 1, 'normal', Uint8Array.of(5)))
    assert.deepEqual(out.entries[2].data, fifth.data)
    // the result is a valid chain from prevHash, as the core checks it
    let prev = out.prevHash
    for (const e of out.entries) {
      assert.deepEqual(computeEntryHash(prev, e.index, e.term, e.type, e.data), e.hash)
      prev = e.hash
    }
    const beyond: AppMessage = { ...m, prevIndex: 9, prevTerm: 1 }
    assert.equal(
      rehashInbound(beyond, view(doctored)),
      beyond,
      'an append it cannot match is left for the core to reject'
    )
  })

  it('a coalition leader keeps evidence off the board; a censor drops only statements its target signed', () => {
    const h = new Harness()
    h.accept(genesisEntry(smallGenesis()))
    const signed = partition(h.state(), [0, 1], [100_000n, 200_000n])
    const unsignedBy1 = partition(h.state(), [0, 1], [100_000n, 200_000n], [h.state().pool.members[0]])
    assert.equal(coalitionDrop(Uint8Array.of(1, 5, 0)), 'a coalition leader keeps equivocation evidence off the board')
    assert.equal(coalitionDrop(encodeStatementEntry(signed)), null)
    const censor = new Censor()
    assert.equal(censor.reason(encodeStatementEntry(signed)), null, 'censoring nobody')
    censor.set({ name: 'bob', key: h.state().pool.members[1] })
    assert.match(censor.reason(encodeStatementEntry(signed)) ?? '', /censoring statements signed by bob/)
    assert.equal(censor.reason(encodeStatementEntry(unsignedBy1)), null, 'bob did not sign that one')
    assert.equal(censor.reason(encodeBlocksEntry(1)), null)
    censor.set(null)
    assert.equal(censor.member, null)
  })
})

describe('lab: lab-only settings', () => {
  it('refuses a coalition member or an answer delay outside lab mode, naming the setting', () => {
    assert.throws(() => parseConfig('lab-coalition=1', 'x.conf'), /x\.conf: lab-coalition=1 needs lab mode \(lab=1\)/)
    assert.throws(() => parseConfig('lab-answer-delay-ms=50', 'x.conf'), /lab-answer-delay-ms needs lab mode/)
    const c = parseConfig(
      'lab=1\nlab-coalition=1\nlab-answer-delay-ms=120\ndefense-quorum-read=0\ndefense-evidence=0',
      'x.conf'
    )
    assert.deepEqual([c.labCoalition, c.labAnswerDelayMs], [true, 120])
    assert.deepEqual(c.defenses, { quorumRead: false, hashChain: true, gossipCheck: true, evidence: false })
    assert.throws(() => parseConfig('defense-hash-chain=maybe', 'x.conf'), /defense-hash-chain: expected 0 or 1/)
  })
})

describe("lab: the offline rewrite of a stopped node's store", () => {
  const disk = tempDatabaseEachTest()

  it('the statement becomes a no-op of the same index and term, the chain is whole again, the pool records forget it', async () => {
    const store = await RaftStore.open(disk.db)
    const boot = bootstrapState({ voters: ['a', 'b', 'c'], learners: [] })
    await store.bootstrap(boot)
    const h = new Harness()
    h.accept(genesisEntry(smallGenesis()))
    const s1 = partition(h.state(), [0, 1], [100_000n, 200_000n])
    const datas = [
      new Uint8Array(0),
      genesisEntry(smallGenesis()),
      encodeStatementEntry(s1),
      encodeBlocksEntry(2),
      new Uint8Array(0)
    ]
    const entries: Entry[] = []
    let prev = boot.entries[0].hash
    datas.forEach((d, i) => {
      const e = makeEntry(prev, i + 2, 2, 'normal', d)
      entries.push(e)
      prev = e.hash
    })
    const board = await loadPoolBoard(disk.db)
    const ops = await new PoolApplier(board).apply([boot.entries[0], ...entries])
    const ready: Ready = {
      softState: null,
      hardState: { term: 2, vote: 'a', commit: 6 },
      entries,
      snapshot: null,
      messages: [],
      committedEntries: [],
      readStates: [],
      alarms: []
    }
    await store.persist(ready, [], [...ops, store.appliedOp(6)])
    assert.equal(board.statement(statementId(s1))?.status, 'accepted')

    const result = await rewriteStoredEntry(disk.db, 4, new Uint8Array(0))
    assert.deepEqual(result, { index: 4, term: 2, rehashed: 2, applied: 6 })
    const persisted = (await (await RaftStore.open(disk.db)).load())!
    assert.deepEqual(persisted.hardState, { term: 2, vote: 'a', commit: 6 }, 'the hard state is kept')
    const four = persisted.entries.find((e) => e.index === 4)!
    assert.deepEqual([four.term, four.data.length], [2, 0])
    assert.doesNotThrow(
      () => new Raft({ id: 'a', rand: () => 0 }, persisted),
      "the rewritten store passes the core's validation (hash chain included)"
    )
    assert.notDeepEqual(persisted.entries.at(-1)!.hash, entries.at(-1)!.hash)
    const rebuilt = await loadPoolBoard(disk.db, { signatureCache: new SignatureCache() })
    assert.equal(rebuilt.statement(statementId(s1)), undefined, 'the doctored pool board never saw S1')
    assert.equal(rebuilt.pool({ kind: 'root' })?.status, 'open')
    assert.equal(rebuilt.chainHeight, board.chainHeight)
    assert.equal(rebuilt.appliedIndex, 6)
    await assert.rejects(rewriteStoredEntry(disk.db, 40, new Uint8Array(0)), /no entry at index 40/)
  })
})

describe('lab: the report', () => {
  const base = (over: Partial<RunRecord>): RunRecord => ({
    run: 0,
    seed: 1,
    replay: '',
    members: 7,
    defense: 'none',
    cast: { a: 'node1', b: 'node2', c: 'node3' },
    coalition: { size: 2, members: ['node1', 'node4'], leader: 'node4', led: true, leaderAtOffer: 'node4' },
    holdersOffline: [],
    answerOrder: [],
    s1: null,
    s2: null,
    fooled: false,
    acceptedByC: false,
    acceptedByHonest: [],
    cRefusal: null,
    cCaughtUp: true,
    detections: [],
    learned: [],
    timeline: {},
    durationMs: 1,
    error: null,
    ...over
  })
  const records: RunRecord[] = [
    base({ fooled: true, acceptedByC: true }),
    base({
      fooled: true,
      defense: 'evidence',
      detections: [{ node: 'node2', role: 'B', defense: 'evidence', how: 'detected', atMs: 40, message: '' }]
    }),
    base({ defense: 'evidence', error: 'no leader' }),
    base({
      defense: 'all',
      cRefusal: { code: 'quorum-read', reason: '' },
      detections: [{ node: 'node3', role: 'C', defense: 'quorum-read', how: 'detected', atMs: -900, message: '' }]
    })
  ]

  it('rates per coalition size and defense set; failed runs are counted apart', () => {
    const s = summarize(records, { command: 'x', durationMs: 5, createdAt: 't' })
    const none = s.cells.find((c) => c.defense === 'none')!
    assert.deepEqual([none.runs, none.fooledRate, none.detectionRate, none.acceptedByC], [1, 1, 0, 1])
    const ev = s.cells.find((c) => c.defense === 'evidence')!
    assert.deepEqual(
      [ev.runs, ev.errors, ev.fooled, ev.detected, ev.byDefense, ev.firstDetectionMedianMs],
      [1, 1, 1, 1, { evidence: 1 }, 40]
    )
    const all = s.cells.find((c) => c.defense === 'all')!
    assert.deepEqual([all.fooledRate, all.detectedBeforeOffer, all.cAnswers], [0, 1, { 'quorum-read': 1 }])
    assert.match(renderSummaryTable(s), /2 +evidence +2 \(1 failed\) +1\/1 100% +1\/1 100% +evidence 1 +0\.0 s after/)
  })

  it('the chart and the page are self-contained: no scripts, no external assets', () => {
    const s = summarize(records, { command: 'poolboard lab coalition-drop <x>', durationMs: 5 })
    const svg = renderSvg(s)
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/)
    const html = renderHtml(s)
    for (const text of [svg, html]) {
      assert.doesNotMatch(text, /<script|href=|src=|@import|url\(/)
    }
    assert.match(html, /&lt;x&gt;/, 'text is escaped')
  })
})
