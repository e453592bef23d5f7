import assert from 'node:assert/strict'
import { encodeHistory } from '../../board/history.js'
import { makeEntry, type Message, type SnapMessage } from '../../board/raft/index.js'
import { BoardError } from '../../daemon/replica/board.js'
import { PREFIX } from '../../storage/database.js'
import { StoreCorruptError } from '../../storage/raft-store.js'
import { TestBoards } from '../helpers/boards.js'
import { waitFor } from '../helpers/process.js'

// The driver (daemon/replica/board.ts) on real LevelDB stores, with every message and tick in the
// test's hand. Each test is the regression test of a bug found by the audit of issue 12.

const text = (s: string): Uint8Array => new TextEncoder().encode(s)
const toNode =
  (id: string) =>
  (m: Message): boolean =>
    m.to === id

describe('the board driver', function () {
  this.timeout(60_000)
  let boards: TestBoards | undefined

  afterEach(async () => {
    await boards?.close()
    boards = undefined
  })

  async function committedEverywhere(b: TestBoards, index: number): Promise<void> {
    await waitFor(
      `every node to apply ${index}`,
      async () => {
        b.tick()
        await b.deliver()
        return [...b.nodes.values()].every((n) => (n.board?.appliedIndex ?? 0) >= index)
      },
      20_000,
      1
    )
  }

  // Rule (docs/raft.md, snapshots): a follower applies every committed entry once, in order, also
  // when a history snapshot starts above its applied index.
  it('a follower that acknowledged entries before hearing they committed applies them when a history snapshot overtakes the heartbeats', async () => {
    boards = new TestBoards({ voters: ['a', 'b', 'c'], learners: [] }, { snapshotEveryEntries: 2 })
    const b = boards
    await b.start()
    await b.elect('a')
    const a = b.node('a').board!
    await b.until(a.propose(text('x0'), 10_000))
    await committedEverywhere(b, a.commit)
    const cStart = b.node('c').board!.appliedIndex
    // x1 reaches b and c on an append that still carries the older commit; both acknowledge it.
    const x1 = a.propose(text('x1'), 10_000)
    await b.deliver(() => false)
    await b.deliver((m) => m.type === 'app' && m.from === 'a')
    // From here on, c hears nothing: a commits x1 and more with b, and compacts past them.
    await b.deliver((m) => m.to !== 'c')
    const k = (await b.until(x1, (m) => m.to !== 'c')).index
    for (let i = 2; i <= 6; i++) await b.until(a.propose(text(`x${i}`), 10_000), (m) => m.to !== 'c')
    assert.ok(a.status().snapshotIndex > k + 1, 'the leader compacted past the entry after x1')
    assert.equal(b.node('c').board!.appliedIndex, cStart, 'c has not heard x1 committed')
    b.drop(toNode('c'))
    // The next append to c is rejected (its log ends at x1); the leader answers with a history
    // snapshot from c's match + 1, on its own stream, ahead of any heartbeat.
    const last = a.propose(text('x7'), 10_000)
    await waitFor(
      'a snapshot for c',
      async () => {
        b.drop((m) => m.to === 'c' && m.type === 'heartbeat')
        await b.deliver((m) => m.type !== 'heartbeat' || m.to !== 'c')
        return b.node('c').board!.status().snapshotIndex > k
      },
      20_000,
      1
    )
    assert.equal(b.node('c').fatal, null, 'c did not stop itself')
    await b.until(last)
    await committedEverywhere(b, a.commit)
    const applied = b.node('c').applied.map((e) => e.index)
    assert.deepEqual(
      applied,
      Array.from({ length: applied.length }, (_, i) => applied[0] + i),
      'c applied each entry once, in order'
    )
    assert.ok(applied.includes(k), `c applied x1 (index ${k})`)
    assert.equal(b.node('c').fatal, null)
  })

  // Rule: an alarm names a member that offered a log conflicting with what this node knows; a
  // stale snapshot of an older term proves nothing (docs/raft.md, alarms).
  it('a snapshot of an older term is dropped without checking its history or raising an alarm', async () => {
    boards = new TestBoards({ voters: ['a', 'b', 'c'], learners: [] })
    const b = boards
    await b.start()
    await b.elect('a')
    await b.until(b.node('a').board!.propose(text('x'), 10_000))
    await committedEverywhere(b, b.node('a').board!.commit)
    const a = b.node('a')
    const oldTerm = a.board!.term
    const entries = await a.store!.readEntries(2, a.board!.commit)
    // A snapshot a sent in its term, cut from c's match at the time, that c's log no longer continues.
    const stale: SnapMessage = {
      type: 'snap',
      from: 'a',
      to: 'c',
      term: oldTerm,
      snapshot: {
        meta: { index: a.board!.commit, term: oldTerm, hash: entries.at(-1)!.hash, configuration: b.configuration },
        data: encodeHistory(
          entries.map((e) => ({ ...e, data: text('other') })),
          2
        )
      }
    }
    await b.transfer('b')
    assert.ok(b.node('c').board!.term > oldTerm)
    b.node('c').receive(stale)
    await b.deliver()
    assert.deepEqual(b.node('c').alarms, [])
    assert.equal(b.node('c').fatal, null)
  })

  // Rule (board/raft/types.ts, Ready): a snapshot in a Ready is persisted with its own verified
  // history, whatever other snapshots arrived meanwhile.
  it("two snapshots verified before the first one's Ready do not stop the follower", async () => {
    boards = new TestBoards({ voters: ['a', 'b', 'c'], learners: [] }, { snapshotEveryEntries: 2 })
    const b = boards
    await b.start()
    await b.elect('a')
    const a = b.node('a')
    for (let i = 0; i < 6; i++) await b.until(a.board!.propose(text(`y${i}`), 10_000), (m) => m.to !== 'c')
    b.drop(toNode('c'))
    let real: SnapMessage | undefined
    const last = a.board!.propose(text('y6'), 10_000)
    await waitFor(
      'a snapshot for c',
      async () => {
        const snap = b.queue.find((m): m is SnapMessage => m.type === 'snap' && m.to === 'c')
        if (snap !== undefined) {
          real = snap
          return true
        }
        b.drop((m) => m.to === 'c' && m.type === 'heartbeat')
        await b.deliver((m) => (m.type !== 'heartbeat' || m.to !== 'c') && m.type !== 'snap')
        return false
      },
      20_000,
      1
    )
    b.drop((m) => m === real)
    const c = b.node('c')
    // c's disk stalls on an append it accepted, so its Ready loop is busy while the snapshots arrive.
    const release = c.holdWrites()
    const prevIndex = c.board!.status().lastIndex
    const prev = (await a.store!.entry(prevIndex))!
    c.receive({
      type: 'app',
      from: 'a',
      to: 'c',
      term: a.board!.term,
      prevIndex,
      prevTerm: prev.term,
      prevHash: prev.hash,
      entries: await a.store!.readEntries(prevIndex + 1, prevIndex + 1),
      commit: prevIndex
    })
    c.receive(real!)
    await waitFor(
      'c to restore the snapshot',
      async () => c.board!.status().snapshotIndex === real!.snapshot.meta.index,
      10_000,
      1
    )
    // An older snapshot of the same leader and term, right behind it: the core is past it.
    const early = await a.store!.readEntries(1, 4)
    c.receive({
      ...real!,
      snapshot: {
        meta: { index: 4, term: early[3].term, hash: early[3].hash, configuration: b.configuration },
        data: encodeHistory(early, 1)
      }
    })
    release()
    await b.deliver()
    assert.equal(c.fatal, null, `c stopped itself: ${c.fatal?.message}`)
    await b.until(last)
    await committedEverywhere(b, a.board!.commit)
  })

  // Rule (board/raft/types.ts, the durability contract): an acknowledgement leaves only for entries
  // this node stores; one made in a term it has left may name entries a newer leader replaced.
  it('an acknowledgement of entries that an append of a newer term replaced in the same Ready is not sent', async () => {
    boards = new TestBoards({ voters: ['a', 'b', 'c'], learners: [] })
    const b = boards
    await b.start()
    await b.elect('a')
    await b.until(b.node('a').board!.propose(text('x'), 10_000))
    await committedEverywhere(b, b.node('a').board!.commit)
    const c = b.node('c')
    const k = c.board!.status().lastIndex
    const prev = (await c.store!.entry(k))!
    const term = b.node('a').board!.term
    const first = makeEntry(prev.hash, k + 1, term, 'normal', text('a1'))
    const second = makeEntry(first.hash, k + 2, term, 'normal', text('a2'))
    const replacing = makeEntry(prev.hash, k + 1, term + 1, 'normal', text('b1'))
    b.drop(() => true)
    // After a stall, both arrive in one turn: a's appends of its term, then b's of the next term.
    c.receive({
      type: 'app',
      from: 'a',
      to: 'c',
      term,
      prevIndex: k,
      prevTerm: prev.term,
      prevHash: prev.hash,
      entries: [first, second],
      commit: k
    })
    c.receive({
      type: 'app',
      from: 'b',
      to: 'c',
      term: term + 1,
      prevIndex: k,
      prevTerm: prev.term,
      prevHash: prev.hash,
      entries: [replacing],
      commit: k
    })
    await b.deliver(() => false)
    const acks = b.queue.filter((m) => m.from === 'c' && m.type === 'appResp' && !m.reject)
    assert.deepEqual(
      acks.map((m) => [m.to, m.term, (m as { index: number }).index]),
      [['b', term + 1, k + 1]],
      "only b's entry is acknowledged"
    )
    assert.deepEqual(
      (await c.store!.readEntries(k + 1, k + 2)).map((e) => e.term),
      [term + 1]
    )
  })

  // Rule (docs/raft.md, restart): a member that lost its vote must never vote again as if new.
  it('a founding member whose board state was wiped refuses to start', async () => {
    boards = new TestBoards({ voters: ['a', 'b', 'c'], learners: [] })
    const b = boards
    await b.start()
    await b.elect('a')
    const c = b.node('c')
    await c.close()
    // The database survives but every key of the board is gone (a restore of the wrong files, say).
    const db = await (await import('../../storage/database.js')).openDatabase(c.path, { create: false })
    for await (const key of db.keys())
      if (key[0] >= PREFIX.raftHardState && key[0] <= PREFIX.boardApplied) await db.del(key)
    await db.close()
    await assert.rejects(
      c.open(),
      (err: Error) => err instanceof StoreCorruptError && /voted in terms it no longer remembers/.test(err.message)
    )
  })

  // Rule (docs/raft.md, membership): a voter is added only once it has caught up, so a board never
  // waits for the acknowledgement of a member that cannot give it.
  it('a lone voter refuses to make an unreachable member a voter, and keeps accepting changes', async () => {
    boards = new TestBoards({ voters: ['a'], learners: [] })
    const b = boards
    await b.start(['a'])
    await b.elect('a')
    const a = b.node('a').board!
    await committedEverywhere(b, 1)
    await assert.rejects(
      a.changeMembership({ kind: 'addVoter', node: 'z' }, 5_000),
      (err: Error) => err instanceof BoardError && err.code === 'refused' && /not a learner/.test(err.message)
    )
    await b.until(a.changeMembership({ kind: 'addLearner', node: 'z' }, 5_000))
    await assert.rejects(
      a.changeMembership({ kind: 'promoteLearner', node: 'z' }, 5_000),
      (err: Error) => err instanceof BoardError && err.code === 'refused' && /has not caught up/.test(err.message)
    )
    b.drop((m) => m.to === 'z')
    // The board still commits, and still accepts a change.
    await b.until(a.changeMembership({ kind: 'removeNode', node: 'z' }, 5_000), (m) => m.to !== 'z')
    assert.deepEqual(a.status().configuration, { voters: ['a'], learners: [] })
  })

  // Rule (docs/raft.md, membership): a change takes effect when appended, so a leader that demoted
  // itself would stop leading before its change commits; it hands the lead over first.
  // Rule (docs/operations.md, "What wakes an idle node"): a quiet board ticks at idle-tick-ms,
  // followers before their leader; a proposal, or a follower losing its leader's link, brings the
  // full rate back at once.
  it('a quiet board ticks slowly and wakes on a proposal or a lost leader link', async () => {
    boards = new TestBoards({ voters: ['a', 'b', 'c'], learners: [] }, { idleTickMs: 1_000 })
    const b = boards
    await b.start()
    await b.elect('a')
    await b.until(b.node('a').board!.propose(text('x'), 5_000))
    await committedEverywhere(b, 2)
    const periods = (): number[] => ['a', 'b', 'c'].map((id) => b.node(id).tickPeriodMs)
    assert.deepEqual(periods(), [100, 100, 100], 'busy: every node ticks at tick-ms')
    // 1.5 s of heartbeats only: the followers slow down, the leader not yet.
    b.clockOffsetMs += 1_500
    b.tick()
    await b.deliver()
    assert.deepEqual(periods(), [100, 1_000, 1_000])
    b.clockOffsetMs += 1_000
    b.tick()
    await b.deliver()
    assert.deepEqual(periods(), [1_000, 1_000, 1_000], 'quiet: every node ticks at idle-tick-ms')
    // A proposal wakes the leader; the append it sends wakes the followers.
    const proposed = b.node('a').board!.propose(text('y'), 5_000)
    assert.equal(b.node('a').tickPeriodMs, 100)
    await b.until(proposed)
    assert.deepEqual(periods(), [100, 100, 100])
    b.clockOffsetMs += 3_000
    b.tick()
    await b.deliver()
    b.tick()
    await b.deliver()
    assert.deepEqual(periods(), [1_000, 1_000, 1_000])
    // A follower whose link to the leader drops counts the election timeout at the full rate.
    b.node('b').board!.memberLinkChanged('c', false)
    assert.equal(b.node('b').tickPeriodMs, 1_000, 'a link to another follower changes nothing')
    b.node('b').board!.memberLinkChanged('a', false)
    assert.equal(b.node('b').tickPeriodMs, 100)
    // The leader wakes on any link change (it must step down soon if it lost its voters).
    b.node('a').board!.memberLinkChanged('c', false)
    assert.equal(b.node('a').tickPeriodMs, 100)
  })

  it('the leader refuses to demote or remove itself', async () => {
    boards = new TestBoards({ voters: ['a', 'b', 'c'], learners: [] })
    const b = boards
    await b.start()
    await b.elect('a')
    await committedEverywhere(b, 1)
    for (const kind of ['demoteVoter', 'removeNode'] as const) {
      await assert.rejects(
        b.node('a').board!.changeMembership({ kind, node: 'a' }, 5_000),
        (err: Error) => err instanceof BoardError && err.code === 'refused' && /transfer the lead/.test(err.message)
      )
    }
    await b.until(b.node('a').board!.changeMembership({ kind: 'demoteVoter', node: 'c' }, 5_000))
    assert.deepEqual(b.node('a').board!.status().configuration, { voters: ['a', 'b'], learners: ['c'] })
  })

  it('a caught-up learner of a lone voter is promoted', async () => {
    boards = new TestBoards({ voters: ['a'], learners: [] })
    const b = boards
    await b.start(['a'])
    await b.elect('a')
    const a = b.node('a').board!
    await committedEverywhere(b, 1)
    // d joins with an empty store (not a founding member) and catches up as a learner.
    await b.start(['d'])
    await b.until(a.changeMembership({ kind: 'addLearner', node: 'd' }, 10_000))
    await committedEverywhere(b, a.commit)
    await b.until(a.changeMembership({ kind: 'promoteLearner', node: 'd' }, 10_000))
    assert.deepEqual(a.status().configuration, { voters: ['a', 'd'], learners: [] })
  })
})
