/**
 * The board's pool state machine, driven entry by entry with real signatures.
 */
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { BOARD_ENTRY_VERSION, ENTRY_KIND, encodeGenesisEntry, encodeRawEntry } from '../../board/entries.js'
import { MAX_EVIDENCE_PER_MEMBER, PoolBoard } from '../../board/pool-board.js'
import { SignatureCache } from '../../board/signature-cache.js'
import {
  encodeStatement,
  equalBytes,
  findEquivocations,
  initialState,
  kickout,
  poolIdOf,
  short,
  signState,
  stateHash as stateHashOf,
  statementId,
  toHex,
  txid,
  verifyEvidence,
  withdrawOutpoints,
  type PoolRef,
  type PoolState
} from '../../protocol/index.js'
import {
  Harness,
  MEMBERS,
  blocksEntry,
  evidenceEntry,
  genesisEntry,
  kickoutEntry,
  mergeEntry,
  mergeOf,
  nextState,
  partition,
  secretOf,
  signAllState,
  signedEntry,
  smallGenesis,
  statementEntry,
  updateEntry
} from './helpers.js'

const ROOT: PoolRef = { kind: 'root' }
const HEX16 = '[0-9a-f]{16}'

/** A board with the 5-member pool open and at state 1 (member 0 paid member 1 1,000 sats). */
function openPool(): { h: Harness; s1: PoolState } {
  const h = new Harness()
  h.accept(genesisEntry(smallGenesis()))
  h.accept(updateEntry(h.state(), 0, 1, 1_000n))
  return { h, s1: h.state() }
}

describe('PoolBoard', () => {
  describe('genesis', () => {
    it('the first valid genesis opens the pool; a second one is rejected', () => {
      const h = new Harness()
      const g = smallGenesis()
      const s0 = initialState(g)
      const forged = signAllState(s0)
      forged.signatures[2] = signState(s0, MEMBERS[7].secretKey)
      h.reject(
        encodeGenesisEntry(g, forged),
        new RegExp(`state 0: the signature of member 2 \\(${short(s0.pool.members[2])}\\) does not verify`)
      )
      h.reject(
        encodeGenesisEntry(g, signAllState(nextState(s0, 0, 1, 5n))),
        /the signed state is not state 0 of this genesis: state number 1, expected 0/
      )
      assert.equal(h.board.genesis, null)

      const opened = h.accept(genesisEntry(g))
      assert.deepStrictEqual(opened.result.pool, ROOT)
      assert.equal(opened.result.stateNumber, 0)
      assert.deepStrictEqual(h.board.poolId, poolIdOf(g))
      assert.equal(h.board.pool(ROOT)?.status, 'open')
      assert.deepStrictEqual(h.board.signedState(ROOT), signAllState(s0))
      assert.equal(h.board.chainHeight, 100, 'the chain is at least at the creation height')

      h.reject(
        genesisEntry(smallGenesis(3)),
        new RegExp(
          `the board already holds pool ${short(poolIdOf(g))}; a second genesis \\(pool ${HEX16}\\) is refused`
        )
      )
      h.reject(genesisEntry(g), /the board already holds pool/)
      h.board.checkConsistency()
    })

    it('refuses pool entries before the genesis', () => {
      const h = new Harness()
      const s0 = initialState(smallGenesis())
      h.reject(updateEntry(s0, 0, 1, 1n), /the board holds no pool yet/)
      h.reject(statementEntry(partition(s0, [0], [100_000n])), /the board holds no pool yet/)
      h.reject(kickoutEntry(ROOT, 0, s0.pool.members[0]), /the board holds no pool yet/)
      h.accept(blocksEntry(3))
      assert.equal(h.board.chainHeight, 3)
    })
  })

  describe('updates', () => {
    it('an update signed by every member advances the state', () => {
      const { h, s1 } = openPool()
      assert.equal(s1.stateNumber, 1)
      assert.deepStrictEqual(s1.balances, [99_000n, 201_000n, 300_000n, 400_000n, 500_000n])
      const a = h.accept(updateEntry(s1, 4, 0, 7n))
      assert.deepStrictEqual(a.result.pool, ROOT)
      assert.equal(a.result.stateNumber, 2)
      assert.equal(h.state().stateNumber, 2)
      assert.equal(h.board.pool(ROOT)?.proof.kind, 'signatures')
      h.board.checkConsistency()
    })

    it('a forged or missing signature is rejected, naming the member', () => {
      const { h, s1 } = openPool()
      const next = nextState(s1, 0, 1, 1n)
      const forged = signAllState(next)
      forged.signatures[3] = signState(next, MEMBERS[8].secretKey)
      h.reject(
        signedEntry(forged),
        new RegExp(
          `state 2 of the root pool: the signature of member 3 \\(${short(next.pool.members[3])}\\) does not verify`
        )
      )
      const missing = signAllState(next)
      missing.signatures[1] = new Uint8Array(64)
      h.reject(
        signedEntry(missing),
        new RegExp(`the signature of member 1 \\(${short(next.pool.members[1])}\\) does not verify`)
      )
      // a signature over another state (state 1) does not count for state 2
      const replayed = signAllState(next)
      replayed.signatures[0] = signState(s1, secretOf(s1.pool.members[0]))
      h.reject(signedEntry(replayed), /the signature of member 0 .* does not verify/)
      assert.equal(h.state().stateNumber, 1)
    })

    it('a wrong state number, a height going back or ahead of the chain are rejected', () => {
      const { h, s1 } = openPool()
      h.reject(signedEntry(signAllState(s1)), /state number of the root pool: expected 2, got 1/)
      const s3 = nextState(nextState(s1, 0, 1, 1n), 0, 1, 1n)
      h.reject(signedEntry(signAllState(s3)), /state number of the root pool: expected 2, got 3/)
      h.reject(updateEntry(s1, 0, 1, 1n, 101), /heightT 101 is above the chain height 100/)
      h.accept(blocksEntry(5))
      h.accept(updateEntry(s1, 0, 1, 1n, 105))
      const back = { ...nextState(h.state(), 0, 1, 1n), heightT: 104 }
      h.reject(signedEntry(signAllState(back)), /heightT 104 is before the current state's height 105/)
    })

    it('a state of another pool, or of an unknown sub-pool, is rejected', () => {
      const { h } = openPool()
      const other = initialState(smallGenesis(3))
      h.reject(updateEntry(other, 0, 1, 1n), new RegExp(`the update is for pool ${HEX16}, the board holds pool`))
      const ghost: PoolState = {
        ...h.state(),
        pool: { ...h.state().pool, ref: { kind: 'partition', statementId: new Uint8Array(32).fill(3) } }
      }
      h.reject(updateEntry(ghost, 0, 1, 1n), /unknown pool: the board holds no partition 0303030303030303/)
    })
  })

  describe('partitions', () => {
    it('a partition among 3 of 5 is accepted: passives untouched, its sub-pool at state 0 = the statement balances', () => {
      const { h, s1 } = openPool()
      const stmt = partition(s1, [0, 2, 4], [399_000n, 200_000n, 300_000n])
      const id = statementId(stmt)
      const a = h.accept(statementEntry(stmt))
      const sub: PoolRef = { kind: 'partition', statementId: id }
      assert.deepStrictEqual(a.result.statementId, id)
      assert.deepStrictEqual(a.result.createdPool, sub)
      assert.deepStrictEqual(a.result.pool, ROOT)
      assert.equal(a.result.stateNumber, 1)

      // the root keeps its state; its passives' balances are untouched, its actives' moved
      assert.deepStrictEqual(h.state(), s1)
      assert.equal(h.board.pool(ROOT)?.status, 'frozen')
      const root = h.board.poolList()[0]
      assert.deepStrictEqual(
        root.members.map((m) => (m.partitionedBy === null ? null : toHex(m.partitionedBy))),
        [toHex(id), null, toHex(id), null, toHex(id)]
      )
      assert.deepStrictEqual(
        root.members.map((m) => m.balanceSats),
        s1.balances
      )

      const s = h.state(sub)
      assert.equal(s.stateNumber, 0)
      assert.deepStrictEqual(s.pool.members, stmt.actives)
      assert.deepStrictEqual(s.balances, [399_000n, 200_000n, 300_000n])
      assert.deepStrictEqual(s.pool.funding, { txid: txid(stmt.intermediateTx), vout: 0 })
      assert.deepStrictEqual(h.board.pool(sub)?.proof, { kind: 'statement', statementId: id })
      assert.equal(
        h.board.signedState(sub),
        undefined,
        'state 0 of a partition is signed by its statement, not by an update'
      )

      const record = h.board.statement(id)
      assert.equal(record?.status, 'accepted')
      assert.equal(record?.index, a.result.index)
      assert.deepStrictEqual(h.board.result(a.result.index), a.result)
      assert.deepStrictEqual(
        h.board.conflictsFor(withdrawOutpoints(s1)).map((r) => toHex(r.id)),
        [toHex(id)]
      )
      assert.deepStrictEqual(h.board.conflictsFor([withdrawOutpoints(s1)[1]]), [])
      assert.deepStrictEqual(h.board.spentBy(withdrawOutpoints(s1)[2]), id)
      h.board.checkConsistency()
    })

    it('a conflicting statement is rejected naming the first, with evidence against whoever signed both', () => {
      const { h, s1 } = openPool()
      const [, , C, D] = s1.pool.members
      const first = partition(s1, [0, 2, 4], [399_000n, 200_000n, 300_000n])
      h.accept(statementEntry(first))
      // C (index 2) also signs a partition with D that spends C's Withdraw again
      const second = partition(s1, [2, 3], [350_000n, 350_000n])
      const a = h.reject(
        statementEntry(second),
        new RegExp(
          `conflicts with statement ${short(statementId(first))} \\(accepted at index 3\\): both spend outpoint [0-9a-f]{64}:0; equivocation by ${short(C)}`
        )
      )
      assert.deepStrictEqual(a.result.conflictsWith, statementId(first))
      assert.equal(a.result.evidenceIds.length, 1)
      const record = h.board.statement(statementId(second))
      assert.equal(record?.status, 'rejected')
      assert.deepStrictEqual(record?.conflictsWith, statementId(first))
      assert.equal(record?.statement, null)

      const [ev] = h.board.evidence()
      assert.deepStrictEqual(ev.evidence.member, C)
      assert.deepStrictEqual(ev.id, a.result.evidenceIds[0])
      assert.equal(ev.source, 'conflict')
      assert.deepStrictEqual(verifyEvidence(ev.evidence, poolIdOf(h.board.genesis!)), { ok: true })
      assert.deepStrictEqual(h.board.equivocators(), [C])

      // the same evidence proposed again is recorded once
      h.reject(evidenceEntry(ev.evidence), new RegExp(`evidence ${short(ev.id)} is already recorded \\(index 4\\)`))
      // an incomplete conflicting statement carrying only C's signature still convicts C
      const third = partition(s1, [1, 2], [100_000n, 401_000n], [C])
      const b = h.reject(statementEntry(third), /conflicts with statement .*; equivocation by/)
      assert.equal(b.result.evidenceIds.length, 1)
      // a conflicting statement signed only by someone who never signed the first convicts nobody
      const fourth = partition(s1, [2, 3], [1n, 699_999n], [D])
      const c = h.reject(
        statementEntry(fourth),
        /^conflicts with statement [0-9a-f]{16} \(accepted at index 3\): both spend outpoint [0-9a-f]{64}:0$/
      )
      assert.deepStrictEqual(c.result.evidenceIds, [])
      assert.deepStrictEqual(h.board.equivocators(), [C])
      assert.equal(h.board.evidence().length, 2)
      // the same accepted statement again is a duplicate, not a conflict
      h.reject(
        statementEntry(first),
        new RegExp(`statement ${short(statementId(first))} is already on the board \\(accepted at index 3\\)`)
      )
      h.board.checkConsistency()
    })

    it('a stale statement is rejected, and so is one ahead of the pool', () => {
      const h = new Harness()
      h.accept(genesisEntry(smallGenesis()))
      const s0 = h.state()
      h.accept(updateEntry(s0, 0, 1, 1_000n))
      h.reject(
        statementEntry(partition(s0, [0, 1], [150_000n, 150_000n])),
        /stale: the statement partitions state 0 of the root pool, whose current state is 1/
      )
      const s2 = nextState(h.state(), 0, 1, 1n)
      h.reject(
        statementEntry(partition(s2, [0, 1], [150_000n, 150_000n])),
        /partitions state 2 of the root pool, which is only at state 1/
      )
      assert.equal(h.board.pool(ROOT)?.status, 'open')
    })

    it('an incomplete or badly signed statement is rejected, naming the active', () => {
      const { h, s1 } = openPool()
      const [A, , C] = s1.pool.members
      h.reject(
        statementEntry(partition(s1, [0, 2], [200_000n, 199_000n], [A])),
        new RegExp(`incomplete: missing the signatures of actives 1 \\(${short(C)}\\)`)
      )
      const bad = partition(s1, [0, 2], [200_000n, 199_000n])
      bad.signatures[1] = { index: 1, signature: new Uint8Array(64).fill(1) }
      h.reject(statementEntry(bad), new RegExp(`the signature of active 1 \\(${short(C)}\\) does not verify`))
      h.reject(
        statementEntry(partition(s1, [0, 2], [200_000n, 199_000n], undefined, 101)),
        /heightT 101 is above the chain height 100/
      )
      assert.equal(h.board.pool(ROOT)?.status, 'open')
      assert.equal(h.board.statement(statementId(bad))?.status, 'rejected')
    })

    it('a frozen root refuses a root update; disjoint partitions of the same state are still accepted', () => {
      const { h, s1 } = openPool()
      const first = partition(s1, [0, 2, 4], [399_000n, 200_000n, 300_000n])
      h.accept(statementEntry(first))
      h.reject(
        updateEntry(s1, 1, 3, 10n),
        new RegExp(
          `the root pool is frozen: its state 1 was partitioned by statement ${short(statementId(first))} \\(index 3\\); a new state would drop those partitions: merge them back first`
        )
      )
      h.reject(kickoutEntry(ROOT, 1, s1.pool.members[1]), /the root pool is frozen/)
      const parallel = partition(s1, [1, 3], [300_000n, 301_000n])
      h.accept(statementEntry(parallel))
      const tree = h.board.poolTree()
      assert.deepStrictEqual(
        tree?.children.map((c) => c.pool.ref),
        [
          { kind: 'partition', statementId: statementId(first) },
          { kind: 'partition', statementId: statementId(parallel) }
        ]
      )
      assert.equal(h.board.valueHeldSats(), 1_500_000n)
      h.board.checkConsistency()
    })

    it('a sub-pool updates with its actives alone, and can be partitioned again', () => {
      const { h, s1 } = openPool()
      const stmt = partition(s1, [0, 2, 4], [399_000n, 200_000n, 300_000n])
      h.accept(statementEntry(stmt))
      const sub: PoolRef = { kind: 'partition', statementId: statementId(stmt) }
      const sub0 = h.state(sub)
      const u = h.accept(updateEntry(sub0, 0, 2, 9_000n))
      assert.deepStrictEqual(u.result.pool, sub)
      const sub1 = h.state(sub)
      assert.equal(sub1.stateNumber, 1)
      assert.deepStrictEqual(sub1.balances, [390_000n, 200_000n, 309_000n])
      assert.equal(h.board.signedState(sub)?.signatures.length, 3)
      // nested partition of the sub-pool at its state 1
      const nested = partition(sub1, [1, 2], [254_500n, 254_500n])
      const n = h.accept(statementEntry(nested))
      const nestedRef: PoolRef = { kind: 'partition', statementId: statementId(nested) }
      assert.deepStrictEqual(n.result.createdPool, nestedRef)
      assert.equal(h.board.pool(sub)?.status, 'frozen')
      assert.deepStrictEqual(h.state(nestedRef).balances, [254_500n, 254_500n])
      const tree = h.board.poolTree()
      assert.deepStrictEqual(tree?.children[0].pool.ref, sub)
      assert.deepStrictEqual(tree?.children[0].children[0].pool.ref, nestedRef)
      assert.deepStrictEqual(tree?.children[0].children[0].pool.parent, { pool: sub, stateNumber: 1 })
      // the nested statement conflicts with nothing at the root: root outpoints and sub-pool outpoints differ
      assert.deepStrictEqual(
        h.board.conflictsFor(withdrawOutpoints(sub1)).map((r) => toHex(r.id)),
        [toHex(statementId(nested))]
      )
      h.board.checkConsistency()
    })
  })

  describe('evidence entries', () => {
    it('evidence learned elsewhere is verified and recorded once', () => {
      const { h, s1 } = openPool()
      const [, B] = s1.pool.members
      // B signs two conflicting partitions that never reach the board
      const x = partition(s1, [1, 3], [1n, 600_999n], [B])
      const y = partition(s1, [1], [201_000n], [B])
      const [ev] = findEquivocations(x, y)
      const a = h.accept(evidenceEntry(ev))
      assert.equal(a.result.evidenceIds.length, 1)
      assert.deepStrictEqual(h.board.equivocators(), [B])
      assert.equal(h.board.evidence()[0].source, 'entry')
      h.reject(evidenceEntry(ev), /is already recorded/)
      const other = findEquivocations(
        partition(s1, [3, 4], [1n, 899_999n], [s1.pool.members[3]]),
        partition(s1, [3], [400_000n], [s1.pool.members[3]])
      )[0]
      h.reject(
        evidenceEntry({ ...other, secondSignature: ev.secondSignature }),
        /signature on the second statement does not verify/
      )
      h.reject(
        evidenceEntry({ ...other, firstSignature: new Uint8Array(64).fill(2) }),
        /signature on the first statement does not verify/
      )
      const foreign = initialState(smallGenesis(3))
      const fx = partition(foreign, [0, 1], [150_000n, 150_000n], [foreign.pool.members[0]])
      const fy = partition(foreign, [0], [100_000n], [foreign.pool.members[0]])
      h.reject(
        evidenceEntry(findEquivocations(fx, fy)[0]),
        new RegExp(`^first statement belongs to pool [0-9a-f]{16}, not ${short(poolIdOf(h.board.genesis!))}$`)
      )
    })

    it('keeps at most a bounded number of pieces of evidence per member', () => {
      const { h, s1 } = openPool()
      const B = s1.pool.members[1]
      const base = partition(s1, [1], [201_000n], [B])
      let accepted = 0
      for (let i = 0; i < MAX_EVIDENCE_PER_MEMBER + 2; i++) {
        const other = partition(s1, [1, 3], [BigInt(i + 1), 601_000n - BigInt(i + 1)], [B])
        const a = h.push(evidenceEntry(findEquivocations(base, other)[0]))
        if (a.result.outcome === 'accepted') accepted++
        else assert.match(a.result.reason, /already proven to equivocate by 16 pieces of evidence/)
      }
      assert.equal(accepted, MAX_EVIDENCE_PER_MEMBER)
    })
  })

  describe('the simulated chain and kick-outs', () => {
    it('blocks advance the height; out-of-range counts are rejected', () => {
      const h = new Harness()
      h.accept(genesisEntry(smallGenesis()))
      const a = h.accept(blocksEntry(5))
      assert.equal(a.result.height, 105)
      assert.equal(h.board.chainHeight, 105)
      const raw = (count: number): Uint8Array => {
        const b = new Uint8Array(6)
        b[0] = BOARD_ENTRY_VERSION
        b[1] = ENTRY_KIND.blocks
        new DataView(b.buffer).setUint32(2, count, true)
        return b
      }
      h.reject(raw(0), /block count 0 is not within 1..10000/)
      h.reject(raw(10_001), /block count 10001 is not within 1..10000/)
      h.reject(raw(5).subarray(0, 5), /blocks entry: blocks: count: expected 4 bytes, got 3/)
      assert.equal(h.board.chainHeight, 105)
    })

    it('a kick-out before T + X is rejected; after it the member is evicted, value is conserved, and the pool continues without them', () => {
      const h = new Harness()
      const g = smallGenesis()
      h.accept(genesisEntry(g))
      const s0 = h.state()
      const [A, B, C, D, E] = s0.pool.members
      h.reject(
        kickoutEntry(ROOT, 0, B),
        new RegExp(
          `the kick-out of member 1 \\(${short(B)}\\) from state 0 of the root pool is valid from height 111 \\(T 100 \\+ X 10 \\+ 1\\); the chain is at 100`
        )
      )
      h.accept(blocksEntry(10))
      h.reject(kickoutEntry(ROOT, 0, B), /valid from height 111 .* the chain is at 110/)
      h.accept(blocksEntry(1))
      h.reject(kickoutEntry(ROOT, 1, B), /the kick-out names state 1 of the root pool, whose current state is 0/)
      h.reject(kickoutEntry(ROOT, 0, MEMBERS[9].publicKey), /is not a member of the root pool/)

      const k = h.accept(kickoutEntry(ROOT, 0, B))
      const cont: PoolRef = { kind: 'continuation', parent: ROOT, parentStateNumber: 0, evictedIndex: 1 }
      assert.deepStrictEqual(k.result.createdPool, cont)
      assert.deepStrictEqual(k.result.txid, txid(kickout(s0, B).tx))
      assert.equal(k.result.height, 111)
      const [record] = h.board.kickouts()
      assert.equal(record.exitSats, 200_000n)
      assert.deepStrictEqual(record.member, B)
      assert.equal(h.board.onChainExitSats(), 200_000n)
      assert.equal(h.board.pool(ROOT)?.status, 'closed')
      assert.equal(h.board.valueHeldSats(), 1_300_000n)
      h.board.checkConsistency()

      const c0 = h.state(cont)
      assert.deepStrictEqual(c0.pool.members, [A, C, D, E])
      assert.deepStrictEqual(c0.balances, [100_000n, 300_000n, 400_000n, 500_000n])
      assert.equal(c0.heightT, 111)
      assert.deepStrictEqual(c0.pool.funding, { txid: record.txid, vout: 1 })
      assert.deepStrictEqual(h.board.pool(cont)?.proof, { kind: 'kickout', kickoutTxid: record.txid })

      // the closed root takes nothing more; the continuation updates with the remaining four
      h.reject(
        updateEntry(s0, 0, 2, 1n),
        new RegExp(
          `the root pool is closed: member 1 \\(${short(B)}\\) was kicked out at state 0 \\(index 8\\); it continues as the continuation of root pool after kick-out of member 1 at state 0`
        )
      )
      h.reject(kickoutEntry(ROOT, 0, C), /the root pool is closed/)
      const u = h.accept(updateEntry(c0, 0, 1, 50_000n))
      assert.deepStrictEqual(u.result.pool, cont)
      assert.equal(h.board.signedState(cont)?.signatures.length, 4)
      // the continuation is partitioned with the same code as any pool
      const c1 = h.state(cont)
      h.accept(statementEntry(partition(c1, [0, 1], [25_000n, 375_000n])))
      assert.equal(h.board.pool(cont)?.status, 'frozen')
      assert.deepStrictEqual(
        h.board.poolTree()?.children.map((c) => c.pool.ref),
        [cont]
      )
      h.board.checkConsistency()
    })

    it('a kick-out of a member holding the whole pool leaves nothing to continue', () => {
      const h = new Harness()
      h.accept(genesisEntry(smallGenesis(2, [0n, 50_000n])))
      const s0 = h.state()
      h.accept(blocksEntry(11))
      const k = h.accept(kickoutEntry(ROOT, 0, s0.pool.members[1]))
      assert.equal(k.result.createdPool, null)
      assert.equal(h.board.valueHeldSats(), 0n)
      assert.equal(h.board.onChainExitSats(), 50_000n)
      h.reject(updateEntry(s0, 1, 0, 1n), /the root pool is closed: .*; nothing of it continues/)
    })
  })

  describe('merging partitions back', () => {
    /** Root at state 1, partitioned among members 0, 2, 4 (who then pay inside it), with a nested partition of 0 and 4. */
    function partitioned(): { h: Harness; s1: PoolState; sub: PoolRef; nested: PoolRef } {
      const { h, s1 } = openPool()
      const stmt = partition(s1, [0, 2, 4], [399_000n, 200_000n, 300_000n])
      h.accept(statementEntry(stmt))
      const sub: PoolRef = { kind: 'partition', statementId: statementId(stmt) }
      h.accept(updateEntry(h.state(sub), 2, 0, 50_000n)) // its member 2 (root's 4) pays its member 0
      const inner = partition(h.state(sub), [0, 2], [440_000n, 259_000n]) // its members 0 and 4 (root's 0 and 4)
      h.accept(statementEntry(inner))
      const nested: PoolRef = { kind: 'partition', statementId: statementId(inner) }
      h.accept(updateEntry(h.state(nested), 0, 1, 1_000n))
      return { h, s1, sub, nested }
    }

    it('one unanimous state N+1 folds every partition under a frozen pool back into it, and the pool is open again (rule: merge supersedes the partitions)', () => {
      const { h, s1, sub, nested } = partitioned()
      const fold = h.board.foldPartitions(ROOT)
      assert.ok(fold.ok)
      // each member's funds where they are now: 0 and 4 in the nested partition, 2 in the first, 1 and 3 never moved
      assert.deepStrictEqual(fold.balances, [439_000n, 201_000n, 200_000n, 400_000n, 260_000n])
      assert.deepStrictEqual(fold.folded, [sub, nested])
      const a = h.accept(mergeEntry(mergeOf(h.board)))
      assert.equal(a.result.kind, 'merge')
      assert.deepStrictEqual(a.result.pool, ROOT)
      assert.equal(a.result.stateNumber, 2)
      const s2 = h.state()
      assert.deepStrictEqual(s2.balances, fold.balances)
      assert.equal(h.board.pool(ROOT)?.status, 'open')
      assert.equal(h.board.pool(sub)?.status, 'merged')
      assert.equal(h.board.pool(nested)?.status, 'merged')
      assert.equal(h.board.pool(nested)?.updatedAt, a.result.index)
      assert.equal(h.board.valueHeldSats(), 1_500_000n)
      h.board.checkConsistency()

      // the partitions take nothing more, and naming the merge says where to go on
      h.reject(
        updateEntry(h.state(nested), 0, 1, 1n),
        new RegExp(
          `the partition ${HEX16} was merged back into the partition ${HEX16} at index ${a.result.index}: its members go on there`
        )
      )
      h.reject(
        updateEntry(h.state(sub), 0, 1, 1n),
        new RegExp(`was merged back into the root pool at index ${a.result.index}`)
      )
      h.reject(statementEntry(partition(h.state(nested), [0], [439_000n])), /was merged back/)
      // a statement on the superseded root state is stale
      h.reject(
        statementEntry(partition(s1, [1, 3], [201_000n, 400_000n])),
        /stale: the statement partitions state 1 of the root pool, whose current state is 2/
      )
      // the root pays among all five again, and can be partitioned again at its new state
      h.accept(updateEntry(s2, 3, 2, 5_000n))
      h.accept(statementEntry(partition(h.state(), [1, 3], [201_000n, 395_000n])))
      assert.equal(h.board.pool(ROOT)?.status, 'frozen')
      assert.deepStrictEqual(
        h.board.poolTree()?.children.map((c) => c.pool.status),
        ['merged', 'open']
      )
      h.board.checkConsistency()
      // and merged again
      h.accept(mergeEntry(mergeOf(h.board)))
      assert.equal(h.board.pool(ROOT)?.status, 'open')
      assert.equal(h.state().stateNumber, 4)
      h.board.checkConsistency()
    })

    it('a nested frozen partition merges on its own; its parent stays frozen', () => {
      const { h, sub, nested } = partitioned()
      const a = h.accept(mergeEntry(mergeOf(h.board, sub)))
      assert.deepStrictEqual(a.result.pool, sub)
      assert.equal(h.board.pool(sub)?.status, 'open')
      assert.equal(h.board.pool(nested)?.status, 'merged')
      assert.equal(h.board.pool(ROOT)?.status, 'frozen')
      assert.deepStrictEqual(h.state(sub).balances, [439_000n, 200_000n, 260_000n])
      h.board.checkConsistency()
    })

    it('a merge is refused unless the pool is frozen, its balances are the folded ones, every member signed, and no kick-out closed a pool under it', () => {
      const { h, s1 } = openPool()
      h.reject(
        mergeEntry(signAllState(nextState(s1, 0, 1, 1n))),
        /the root pool is open: only a frozen pool \(one whose state was partitioned\) can be merged/
      )
      const stmt = partition(s1, [0, 2], [100_000n, 299_000n])
      h.accept(statementEntry(stmt))
      const sub: PoolRef = { kind: 'partition', statementId: statementId(stmt) }
      // balances that are not where the funds are: the update the root had before the partition, say
      h.reject(
        mergeEntry(signAllState(nextState(s1, 0, 1, 1n))),
        new RegExp(
          `the merge gives member 0 \\(${HEX16}\\) 98999 sats, but its funds under the root pool are 100000 sats`
        )
      )
      const good = mergeOf(h.board)
      const forged = { ...good, signatures: [...good.signatures] }
      forged.signatures[3] = signState(good.state, MEMBERS[8].secretKey)
      h.reject(
        mergeEntry(forged),
        new RegExp(`merged state 2 of the root pool: the signature of member 3 \\(${HEX16}\\) does not verify`)
      )
      h.reject(mergeEntry(mergeOf(h.board, ROOT, 200)), /heightT 200 is above the chain height 100/)
      h.reject(
        mergeEntry(signAllState(nextState(h.state(sub), 0, 1, 1n))),
        /the partition [0-9a-f]{16} is open: only a frozen pool/
      )
      // a kick-out under it: its funds left on chain
      h.accept(blocksEntry(11))
      h.accept(kickoutEntry(sub, 0, s1.pool.members[2]))
      const fold = h.board.foldPartitions(ROOT)
      assert.ok(!fold.ok)
      assert.match(
        fold.reason,
        /the partition [0-9a-f]{16} under the root pool is closed: member 1 \([0-9a-f]{16}\) was kicked out of it at index \d+, and its funds left on chain/
      )
      h.reject(mergeEntry(good), /under the root pool is closed/)
      assert.equal(h.board.pool(ROOT)?.status, 'frozen')
      h.board.checkConsistency()
    })
  })

  describe('entries that are not pool facts', () => {
    it('records unknown and undecodable entries as rejected, and ignores no-ops and lab entries', () => {
      const { h, s1 } = openPool()
      h.reject(Uint8Array.of(BOARD_ENTRY_VERSION, 0x7f, 1, 2), /unknown entry kind 127/)
      h.reject(Uint8Array.of(9, ENTRY_KIND.state), /unsupported entry version 9/)
      const stmt = statementEntry(partition(s1, [0], [99_000n]))
      h.reject(stmt.subarray(0, stmt.length - 10), /^statement entry: partition statement: /)
      h.reject(
        Uint8Array.of(BOARD_ENTRY_VERSION, ENTRY_KIND.genesis),
        /^genesis entry: genesis: version: expected 1 bytes, got 0/
      )
      assert.equal(h.push(new Uint8Array(0)).result.outcome, 'ignored')
      assert.equal(h.push(encodeRawEntry(Uint8Array.of(1, 2, 3))).result.outcome, 'ignored')
      assert.equal(h.state().stateNumber, 1)
    })

    it('never throws on arbitrary entry bytes', () => {
      const { h } = openPool()
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(8), (bytes, kind) => {
          const data = bytes.length >= 2 ? Uint8Array.of(BOARD_ENTRY_VERSION, kind, ...bytes.subarray(2)) : bytes
          const a = h.push(data)
          assert.notEqual(a.result.outcome, 'accepted')
        }),
        { numRuns: 300 }
      )
      assert.equal(h.state().stateNumber, 1)
      h.board.checkConsistency()
    })

    it('refuses to apply an entry out of order', () => {
      const { h } = openPool()
      const e = h.log.entries[0]
      assert.throws(() => h.board.apply(e), /entry 1 applied after entry 2/)
    })
  })

  describe('the signature cache', () => {
    it('a signature verified once is not verified again', () => {
      const cache = new SignatureCache()
      const one = new Harness(new PoolBoard({ signatureCache: cache }))
      one.accept(genesisEntry(smallGenesis(3)))
      const s0 = one.state()
      const stmt = partition(s0, [0, 1], [150_000n, 150_000n])
      // gossip brings the statement first: its signatures are verified then
      for (const { index, signature } of stmt.signatures)
        assert.ok(cache.verify(signature, statementId(stmt), stmt.actives[index]))
      const before = cache.stats()
      one.accept(statementEntry(stmt))
      const after = cache.stats()
      assert.equal(after.hits - before.hits, 2)
      assert.equal(after.misses, before.misses)

      // a second node sharing the cache applies the same log without a single verification
      const two = new PoolBoard({ signatureCache: cache })
      const misses = cache.stats().misses
      for (const e of one.log.entries) two.apply(e)
      assert.equal(cache.stats().misses, misses)
      assert.deepStrictEqual(two.snapshot(), one.board.snapshot())
    })

    it('is bounded, remembers only valid signatures, and counts hits and misses', () => {
      const s0 = initialState(smallGenesis(3))
      const cache = new SignatureCache(2)
      const sigs = s0.pool.members.map((k) => signState(s0, secretOf(k)))
      const h = stateHashOf(s0)
      assert.ok(cache.verify(sigs[0], h, s0.pool.members[0]))
      assert.ok(cache.verify(sigs[0], h, s0.pool.members[0]))
      assert.ok(!cache.verify(sigs[0], h, s0.pool.members[1]))
      assert.ok(!cache.verify(sigs[0], h, s0.pool.members[1]))
      assert.ok(cache.verify(sigs[1], h, s0.pool.members[1]))
      assert.ok(cache.verify(sigs[2], h, s0.pool.members[2]))
      assert.deepStrictEqual(cache.stats(), { hits: 1, misses: 5, invalid: 2, entries: 2, maxEntries: 2 })
      assert.ok(cache.verify(sigs[0], h, s0.pool.members[0]), 'evicted, verified again')
      assert.equal(cache.stats().misses, 6)
      assert.throws(() => new SignatureCache(0), /signature cache size must be within/)
    })
  })

  it('the pool tree shows every pool with its balances', () => {
    const { h, s1 } = openPool()
    const stmt = partition(s1, [0, 2], [1_000n, 398_000n])
    h.accept(statementEntry(stmt))
    const tree = h.board.poolTree()
    assert.ok(tree !== null)
    assert.equal(tree.pool.status, 'frozen')
    assert.equal(tree.pool.totalSats, 1_500_000n)
    assert.equal(tree.children.length, 1)
    const child = tree.children[0].pool
    assert.deepStrictEqual(
      child.members.map((m) => m.balanceSats),
      [1_000n, 398_000n]
    )
    assert.deepStrictEqual(child.parent, { pool: ROOT, stateNumber: 1 })
    assert.equal(child.proof, 'statement')
    assert.deepStrictEqual(
      h.board.poolList().map((p) => p.ref.kind),
      ['root', 'partition']
    )
    assert.ok(equalBytes(encodeStatement(h.board.statement(statementId(stmt))!.statement!), encodeStatement(stmt)))
    h.board.checkConsistency()
  })
})
