import assert from 'node:assert/strict'
import {
  appendFileSync,
  chmodSync,
  chownSync,
  readdirSync,
  statSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync
} from 'node:fs'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { cli, cliJson, killChild, runCli, spawnCli, tempDir, waitFor } from '../helpers/process.js'

/**
 * `poolboard start` on the data directories people get wrong: each refused before anything is
 * opened, in one line that names the file, key or port and says what to do (docs/operations.md,
 * "Starting a node"; COMMON quality bar: "bad input gets a clear one-line error naming what was
 * wrong"). None of these nodes ever runs, so no process is left behind.
 */
describe('start refuses a data directory it cannot run, in one line naming what is wrong', function () {
  this.timeout(60_000)
  let temp: ReturnType<typeof tempDir>
  let dir: string
  beforeEach(async () => {
    temp = tempDir()
    dir = join(temp.path, 'node')
    await cli(['init', '--datadir', dir, '--name', 'alice', '--listen', '127.0.0.1:0', '--api', '127.0.0.1:0'])
  })
  afterEach(() => {
    chmodSync(temp.path, 0o700)
    if (existsSync(dir)) chmodSync(dir, 0o700)
    if (existsSync(join(dir, 'logs'))) chmodSync(join(dir, 'logs'), 0o700)
    temp.cleanup()
  })

  const oneLine = (stderr: string): string => {
    const lines = stderr.trim().split('\n')
    assert.equal(lines.length, 1, `one line, got:\n${stderr}`)
    assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace')
    return lines[0]
  }
  /** Root reads and writes everything: the permission cases run the CLI as the unprivileged user that owns the directory. */
  const asUser = (): { uid?: number; gid?: number } => {
    if (process.getuid?.() !== 0) return {}
    chownTree(temp.path, 65534, 65534)
    return { uid: 65534, gid: 65534 }
  }
  const addSelf = async (): Promise<void> => {
    appendFileSync(join(dir, 'poolboard.conf'), await cli(['member-line', '--datadir', dir]))
  }

  it('init prints the member line, and member-line prints it again: member=NAME PEERID HOST:PORT', async () => {
    const made = await cliJson<{ peerId: string; memberLine: string }>([
      'init',
      '--datadir',
      join(temp.path, 'b'),
      '--name',
      'bob',
      '--listen',
      '127.0.0.1:7777',
      '--api',
      '127.0.0.1:0'
    ])
    assert.equal(made.memberLine, `member=bob ${made.peerId} 127.0.0.1:7777`)
    assert.equal((await cli(['member-line', '--datadir', join(temp.path, 'b')])).trim(), made.memberLine)
    // A wildcard listen address is not dialable: the line names an address of this machine instead.
    await cli(['init', '--datadir', join(temp.path, 'c'), '--name', 'carol', '--listen', '0.0.0.0:7700'])
    assert.doesNotMatch(await cli(['member-line', '--datadir', join(temp.path, 'c')]), /0\.0\.0\.0/)
    assert.match(
      await cli(['member-line', '--datadir', join(temp.path, 'c'), '--address', '10.1.2.3:7700']),
      /^member=carol \S+ 10\.1\.2\.3:7700\n$/
    )
  })

  it("a config with no members (as init writes it, or empty) is refused, with the fix and the node's own line", async () => {
    const peerId = (await cli(['member-line', '--datadir', dir])).split(' ')[1]
    for (const text of [undefined, '']) {
      if (text !== undefined) writeFileSync(join(dir, 'poolboard.conf'), text)
      const r = await runCli(['start', '--datadir', dir])
      assert.equal(r.code, 2, 'a configuration error exits 2')
      const msg = oneLine(r.stderr)
      assert.match(msg, /poolboard\.conf lists no members/)
      assert.match(
        msg,
        new RegExp(`its line, from poolboard member-line: member=(alice|node) ${peerId} `),
        'names the line to add'
      )
      assert.match(msg, /poolboard member-line/)
      assert.equal(existsSync(join(dir, '.cookie')), false, 'the node never came up')
    }
    // Nothing was written to the board: the first real start still gets the whole member list.
    assert.equal(existsSync(join(dir, 'poolboard.pid')), false)
  })

  it('a garbage node.key is named', async () => {
    await addSelf()
    writeFileSync(join(dir, 'node.key'), Buffer.from([0x0f, 0xff, 0x01, 0x02]))
    const r = await runCli(['start', '--datadir', dir])
    assert.notEqual(r.code, 0)
    assert.match(
      oneLine(r.stderr),
      new RegExp(`${join(dir, 'node.key').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is not a libp2p private key`)
    )
  })

  it('an unreadable data directory is not "not a poolboard data directory"', async () => {
    const user = asUser()
    chmodSync(dir, 0o000)
    const r = await runCli(['start', '--datadir', dir], user)
    assert.notEqual(r.code, 0)
    const msg = oneLine(r.stderr)
    assert.doesNotMatch(msg, /not a poolboard data directory/)
    assert.match(msg, /cannot read the data directory .*node: permission denied/)
  })

  it('an unwritable logs/ is named, without a sonic-boom stack', async () => {
    await addSelf()
    const user = asUser()
    chmodSync(join(dir, 'logs'), 0o500)
    const r = await runCli(['start', '--datadir', dir], user)
    assert.notEqual(r.code, 0)
    const msg = oneLine(r.stderr)
    assert.doesNotMatch(msg, /sonic/i)
    assert.match(msg, /cannot write the log file .*logs\/poolboard\.log: permission denied/)
  })

  it('a listen port in use names the port and the setting', async () => {
    const server: Server = createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as { port: number }).port
    try {
      await addSelf()
      const r = await runCli(['start', '--datadir', dir, '--listen', `127.0.0.1:${port}`])
      assert.equal(r.code, 2)
      const msg = oneLine(r.stderr)
      assert.doesNotMatch(msg, /transportManager|faultTolerance/)
      assert.match(
        msg,
        new RegExp(
          `libp2p listen address 127\\.0\\.0\\.1:${port} is already in use.*listen= in poolboard\\.conf or --listen`
        )
      )
      const api = await runCli(['start', '--datadir', dir, '--api', `127.0.0.1:${port}`])
      assert.match(
        oneLine(api.stderr),
        new RegExp(`admin API address 127\\.0\\.0\\.1:${port} is already in use.*--api`)
      )
    } finally {
      server.close()
    }
  })

  it('a second start on a running data directory says a node runs there, not that its port is in use', async () => {
    await addSelf()
    const port = await new Promise<number>((resolve) => {
      const srv = createServer()
      srv.listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port
        srv.close(() => {
          resolve(p)
        })
      })
    })
    const first = spawnCli(['start', '--datadir', dir, '--quiet', '--listen', `127.0.0.1:${port}`])
    try {
      await waitFor('the first node to come up', () => existsSync(join(dir, '.cookie')))
      const r = await runCli(['start', '--datadir', dir, '--listen', `127.0.0.1:${port}`])
      assert.equal(r.code, 1)
      assert.match(oneLine(r.stderr), /another poolboard node is already running on .*node \(pid \d+\)/)
    } finally {
      await killChild(first)
    }
  })

  it('a missing db/CURRENT is named, with what to do', async () => {
    await addSelf()
    rmSync(join(dir, 'db', 'CURRENT'))
    const r = await runCli(['start', '--datadir', dir])
    assert.notEqual(r.code, 0)
    const msg = oneLine(r.stderr)
    assert.match(msg, /db\/CURRENT file is missing/)
    assert.match(msg, /restore db\/ from a backup/)
  })

  it('under --json every error is {"error":{"code","message"}} and usage errors exit 2', async () => {
    const r = await runCli(['status', '--datadir', dir, '--json'])
    assert.equal(r.code, 4, 'a node that is not running is unreachable')
    const e = JSON.parse(r.stderr) as { error: { code: string; message: string } }
    assert.equal(e.error.code, 'not-running')
    assert.match(e.error.message, /no node is running on/)
    const u = await runCli(['pool', 'pay', '--datadir', dir, '--json', '--to', 'bob', '--amount', 'x'])
    assert.equal(u.code, 2)
    assert.equal((JSON.parse(u.stderr) as { error: { code: string } }).error.code, 'usage')
    const plain = await runCli(['pool', 'pay', '--datadir', dir, '--to', 'bob'])
    assert.equal(plain.code, 2)
    assert.match(plain.stderr, /--amount/)
    mkdirSync(join(temp.path, 'unused'))
    assert.equal(readFileSync(join(dir, 'poolboard.conf'), 'utf8').includes('member='), false)
  })
})

function chownTree(path: string, uid: number, gid: number): void {
  chownSync(path, uid, gid)
  if (statSync(path).isDirectory()) for (const name of readdirSync(path)) chownTree(join(path, name), uid, gid)
}
