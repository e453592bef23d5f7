import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PromiseFile, readPromise } from '../../storage/promise-file.js'
import { checkPromises } from '../../daemon/replica/board.js'
import { bootstrapState, makeEntry } from '../../board/raft/index.js'
import { tempDir } from '../helpers/process.js'

const hash = (b: number): Uint8Array => new Uint8Array(32).fill(b)

// Rule (issue 11): what the board made durable is kept outside LevelDB and survives a torn write.
describe('storage: the promise file', () => {
  const temp = tempDir()
  after(() => {
    temp.cleanup()
  })

  it('reads back the last record written, across reopening', async () => {
    const path = join(temp.path, 'p1')
    const first = await PromiseFile.open(path)
    assert.equal(first.promise, null)
    await first.file.write({ term: 3, vote: 'peer-a', lastIndex: 10, lastHash: hash(1) })
    await first.file.write({ term: 4, vote: null, lastIndex: 12, lastHash: hash(2) })
    await first.file.close()
    const again = await PromiseFile.open(path)
    assert.deepEqual(again.promise, { term: 4, vote: null, lastIndex: 12, lastHash: hash(2) })
    await again.file.write({ term: 4, vote: 'peer-b', lastIndex: 13, lastHash: hash(3) })
    await again.file.close()
    assert.deepEqual(readPromise(readFileSync(path))?.promise, {
      term: 4,
      vote: 'peer-b',
      lastIndex: 13,
      lastHash: hash(3)
    })
  })

  // Rule (storage/promise-file.ts): a record not synced (no change of term or vote) is still what
  // the next start reads: the damage the record detects leaves the operating system's copy intact.
  it('a record written without a sync is read back across reopening', async () => {
    const path = join(temp.path, 'p-unsynced')
    const first = await PromiseFile.open(path)
    await first.file.write({ term: 5, vote: 'peer-a', lastIndex: 20, lastHash: hash(4) })
    await first.file.write({ term: 5, vote: 'peer-a', lastIndex: 21, lastHash: hash(5) }, false)
    await first.file.close()
    const again = await PromiseFile.open(path)
    assert.deepEqual(again.promise, { term: 5, vote: 'peer-a', lastIndex: 21, lastHash: hash(5) })
    await again.file.close()
  })

  it('a torn (corrupt) newer slot falls back to the older one', async () => {
    const path = join(temp.path, 'p2')
    const { file } = await PromiseFile.open(path)
    await file.write({ term: 1, vote: null, lastIndex: 5, lastHash: hash(5) }) // seq 1: slot 1
    await file.write({ term: 1, vote: null, lastIndex: 6, lastHash: hash(6) }) // seq 2: slot 0
    await file.close()
    const bytes = readFileSync(path)
    bytes[40] ^= 0xff // inside slot 0
    writeFileSync(path, bytes)
    assert.deepEqual(readPromise(bytes)?.promise, { term: 1, vote: null, lastIndex: 5, lastHash: hash(5) })
  })

  it('a store that holds less than promised is reported, and a higher promised term is taken over', () => {
    const boot = bootstrapState({ voters: ['a', 'b', 'c'], learners: [] })
    const e2 = makeEntry(boot.entries[0].hash, 2, 2, 'normal', new Uint8Array([1]))
    const store = { ...boot, hardState: { term: 2, vote: 'a', commit: 2 }, entries: [...boot.entries, e2] }
    assert.equal(checkPromises(store, { term: 2, vote: 'a', lastIndex: 2, lastHash: e2.hash }).missing, null)
    const lost = checkPromises(store, { term: 5, vote: 'b', lastIndex: 9, lastHash: hash(9) })
    assert.equal(
      lost.missing,
      'term 5 and its vote; the store has term 2; entries up to 9; the store holds up to 2, committed 2'
    )
    assert.deepEqual(lost.persisted.hardState, { term: 5, vote: 'b', commit: 2 })
    // Same index, another hash, not committed: an entry it held is gone.
    const other = { ...store, hardState: { ...store.hardState, commit: 1 } }
    assert.match(
      checkPromises(other, { term: 2, vote: 'a', lastIndex: 2, lastHash: hash(7) }).missing ?? '',
      /entries up to 2/
    )
  })
})
