// Robustness: whatever well-typed (or slightly malformed) messages arrive from the network, the core
// never throws and never truncates a committed entry.

import assert from 'node:assert/strict'
import fc from 'fast-check'
import { bootstrapState, type Entry, type Message } from '../../board/raft/index.js'
import { chain, Cluster, enc, TestNode } from './harness.js'

const ids = ['n1', 'n2', 'n3']
const smallInt = fc.integer({ min: 0, max: 12 })

/** Entry lists drawn from a few chained histories, possibly cut and shuffled. */
function entriesArb(pool: Entry[][]): fc.Arbitrary<Entry[]> {
  return fc
    .tuple(fc.integer({ min: 0, max: pool.length - 1 }), smallInt, smallInt)
    .map(([k, from, len]) => pool[k]!.slice(from, from + len))
}

function messageArb(to: string, pool: Entry[][]): fc.Arbitrary<Message> {
  const base = { from: fc.constantFrom('n1', 'n3', 'n9'), term: smallInt }
  const hash = fc.constantFrom(
    new Uint8Array(32),
    ...pool
      .flat()
      .slice(0, 8)
      .map((e) => e.hash)
  )
  const ctx = fc.option(fc.constantFrom(enc('a'), enc('b')), { nil: null })
  return fc
    .oneof(
      fc.record({
        ...base,
        type: fc.constant('app' as const),
        prevIndex: smallInt,
        prevTerm: smallInt,
        prevHash: hash,
        entries: entriesArb(pool),
        commit: smallInt
      }),
      fc.record({
        ...base,
        type: fc.constant('appResp' as const),
        index: smallInt,
        reject: fc.boolean(),
        hintIndex: smallInt,
        hintTerm: smallInt
      }),
      fc.record({
        ...base,
        type: fc.constantFrom('vote' as const, 'preVote' as const),
        lastIndex: smallInt,
        lastTerm: smallInt,
        force: fc.boolean()
      }),
      fc.record({ ...base, type: fc.constantFrom('voteResp' as const, 'preVoteResp' as const), reject: fc.boolean() }),
      fc.record({ ...base, type: fc.constant('heartbeat' as const), commit: smallInt, context: ctx }),
      fc.record({ ...base, type: fc.constant('heartbeatResp' as const), context: ctx }),
      fc.record({ ...base, type: fc.constant('timeoutNow' as const) }),
      fc.record({ ...base, type: fc.constant('readIndex' as const), context: fc.constantFrom(enc('r')) }),
      fc.record({
        ...base,
        type: fc.constant('readIndexResp' as const),
        index: smallInt,
        context: fc.constantFrom(enc('r'))
      }),
      fc.record({ ...base, type: fc.constant('transferLeader' as const), target: fc.constantFrom('n1', 'n2', 'n7') }),
      // Malformed numbers must be dropped, not trusted.
      fc.record({
        ...base,
        term: fc.constantFrom(Number.NaN, -1, 1.5),
        type: fc.constant('heartbeat' as const),
        commit: smallInt,
        context: ctx
      })
    )
    .map((m) => ({ ...m, to }) as Message)
}

describe('raft robustness', () => {
  it('robustness: random hostile messages never make a follower throw or lose a committed entry', () => {
    const cfg = { voters: ids, learners: [] }
    const pool: Entry[][] = []
    // Histories that share the founding entry, then diverge.
    const founding = new TestNode('x', bootstrapState(cfg), {}).raft.entryAt(1)!
    for (const terms of [
      [1, 1, 2, 2, 3],
      [1, 3, 3, 4],
      [2, 2, 2, 2, 2, 5],
      [1, 1, 2, 4, 4, 4, 6]
    ]) {
      pool.push([founding, ...chain(terms, founding.hash, 1)])
    }
    fc.assert(
      fc.property(
        fc.array(fc.tuple(messageArb('n2', pool), fc.nat(3)), { maxLength: 60 }),
        fc.boolean(),
        (steps, verifyHashChain) => {
          const n = new TestNode('n2', bootstrapState(cfg), { verifyHashChain })
          // Hash of every committed entry seen so far (kept once the entry is compacted away).
          let committed: (Uint8Array | undefined)[] = []
          for (const [m, ticks] of steps) {
            n.raft.step(m)
            for (let i = 0; i < ticks; i++) n.raft.tick()
            n.handle()
            // Committed entries never change.
            for (let i = 1; i < committed.length; i++) {
              const h = n.raft.hashAt(i)
              if (h !== null) assert.deepEqual(h, committed[i], `committed entry ${i} changed`)
            }
            const next: (Uint8Array | undefined)[] = []
            for (let i = 1; i <= n.raft.commitIndex; i++) next[i] = n.raft.hashAt(i) ?? committed[i]
            committed = next
          }
        }
      ),
      { numRuns: 300, seed: 7 }
    )
  })

  it('robustness: random messages into a leader never make it throw', () => {
    const pool: Entry[][] = [[]]
    fc.assert(
      fc.property(fc.array(messageArb('n1', pool), { maxLength: 40 }), (msgs) => {
        const c = new Cluster({ voters: 3 })
        const l = c.elect('n1')
        l.propose(enc('x'))
        for (const m of msgs) {
          l.step({ ...m, from: m.from === 'n1' ? 'n2' : m.from } as Message)
          c.node('n1').handle()
        }
      }),
      { numRuns: 200, seed: 11 }
    )
  })
})
