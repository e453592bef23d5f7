import assert from 'node:assert/strict'
import { statSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { schnorr } from '@noble/curves/secp256k1.js'
import { defaultConfig } from '../../daemon/host/config.js'
import { DataDir, initDataDir } from '../../daemon/host/datadir.js'
import { openDatabase, DatabaseLockedError } from '../../storage/database.js'
import { tempDir } from '../helpers/process.js'

describe('data directory', () => {
  let temp: ReturnType<typeof tempDir>
  beforeEach(() => {
    temp = tempDir()
  })
  afterEach(() => {
    temp.cleanup()
  })

  it('init writes the config, both keys at mode 0600, and a database', async () => {
    const dir = new DataDir(join(temp.path, 'node'))
    await initDataDir(dir, { ...defaultConfig(), name: 'alice' })
    assert.equal(dir.readConfig().name, 'alice')
    assert.equal(statSync(dir.nodeKeyFile).mode & 0o777, 0o600)
    assert.equal(statSync(dir.memberKeyFile).mode & 0o777, 0o600)
    assert.deepEqual(dir.looseSecrets(), [])
    const db = await openDatabase(dir.databasePath, { create: false })
    await db.close()
  })

  it('keys read back are the ones init made: same peer id, and the member key signs', async () => {
    const dir = new DataDir(join(temp.path, 'node'))
    const made = await initDataDir(dir, defaultConfig())
    const first = await dir.readKeys()
    const second = await dir.readKeys()
    assert.equal(first.peerId, made.peerId)
    assert.equal(second.peerId, made.peerId)
    assert.deepEqual(first.memberKey, made.memberKey)
    const message = new Uint8Array(32).fill(7)
    assert.ok(schnorr.verify(schnorr.sign(message, first.memberSecret), message, made.memberKey))
  })

  it('init refuses an initialized or non-empty directory and leaves it untouched', async () => {
    const dir = new DataDir(join(temp.path, 'node'))
    await initDataDir(dir, defaultConfig())
    const keyBefore = readFileSync(dir.nodeKeyFile)
    await assert.rejects(initDataDir(dir, defaultConfig()), /already a poolboard data directory; refusing to overwrite/)
    assert.deepEqual(readFileSync(dir.nodeKeyFile), keyBefore)
    const other = join(temp.path, 'other')
    mkdirSync(other)
    writeFileSync(join(other, 'notes.txt'), 'mine')
    await assert.rejects(initDataDir(new DataDir(other), defaultConfig()), /exists and is not empty/)
  })

  it('a missing data directory is a clear error that says how to create one', () => {
    assert.throws(
      () => new DataDir(join(temp.path, 'nope')).readConfig(),
      /is not a poolboard data directory .* poolboard init --datadir/
    )
  })

  it('a corrupted member key file is refused with its name', async () => {
    const dir = new DataDir(join(temp.path, 'node'))
    await initDataDir(dir, defaultConfig())
    writeFileSync(dir.memberKeyFile, 'zz\n')
    await assert.rejects(dir.readKeys(), /member\.key: expected 64 hex characters/)
  })

  it('the cookie is __cookie__:<64 hex>, mode 0600, new on every start, removed at exit', async () => {
    const dir = new DataDir(join(temp.path, 'node'))
    await initDataDir(dir, defaultConfig())
    const password = dir.writeCookie()
    assert.match(dir.readCookie(), /^__cookie__:[0-9a-f]{64}$/)
    assert.equal(dir.readCookie(), `__cookie__:${password}`)
    assert.equal(statSync(dir.cookieFile).mode & 0o777, 0o600)
    assert.notEqual(dir.writeCookie(), password)
    dir.removeCookie()
    assert.throws(() => dir.readCookie(), /no node is running/)
  })

  it('the database lock refuses a second opener', async () => {
    const dir = new DataDir(join(temp.path, 'node'))
    await initDataDir(dir, defaultConfig())
    const db = await openDatabase(dir.databasePath, { create: false })
    try {
      // LevelDB's lock is per process and per path; within one process the second open is refused too.
      await assert.rejects(openDatabase(dir.databasePath, { create: false }), DatabaseLockedError)
    } finally {
      await db.close()
    }
  })
})
