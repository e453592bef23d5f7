import assert from 'node:assert/strict'
import { join } from 'node:path'
import { cli, runCli, tempDir } from '../helpers/process.js'

interface Leaf {
  path: string[]
  help: string
}

/** Every command as `poolboard help ...` shows it: the tree walked from the top-level help. */
async function allLeaves(): Promise<Leaf[]> {
  const leaves: Leaf[] = []
  const walk = async (path: string[]): Promise<void> => {
    const help = await cli(['help', ...path])
    const commands = help.includes('\nCommands:\n')
      ? help
          .split('\nCommands:\n')[1]
          .split('\n')
          .map((l) => /^ {2}([a-z][a-z-]*)/.exec(l)?.[1])
          .filter((n): n is string => n !== undefined && n !== 'help')
      : []
    if (commands.length === 0) {
      leaves.push({ path, help })
      return
    }
    await Promise.all(
      commands.map(async (c) => {
        await walk([...path, c])
      })
    )
  }
  await walk([])
  return leaves
}

/**
 * Help and usage errors as a new user meets them (docs/operations.md, "The command"): the help
 * page of the command asked for, no placeholder defaults, one spelling, --json everywhere, and
 * usage errors that name the option as it was typed, with exit code 2.
 */
describe('the poolboard command: help pages and usage errors', function () {
  this.timeout(120_000)
  let leaves: Leaf[]
  before(async () => {
    leaves = await allLeaves()
  })

  it('poolboard help pool pay shows the page of pool pay', async () => {
    const page = await cli(['help', 'pool', 'pay'])
    assert.match(page, /^Usage: poolboard pool pay \[options\]/)
    assert.match(page, /--amount <sats>/)
    const wrong = await runCli(['help', 'pool', 'payy'])
    assert.equal(wrong.code, 2)
    assert.match(wrong.stderr, /no command "pool payy"; poolboard pool has: create, status, members, pay/)
  })

  it('no page shows a placeholder default ({} or []), and "defense" has one spelling', () => {
    assert.ok(leaves.length > 30, `${leaves.length} commands`)
    for (const l of leaves) {
      assert.doesNotMatch(l.help, /\(default: (\{\}|\[\])\)/, `poolboard ${l.path.join(' ')}`)
      assert.doesNotMatch(l.help, /defence/i, `poolboard ${l.path.join(' ')}`)
    }
  })

  it('every command takes --json', () => {
    const without = leaves.filter((l) => !l.help.includes('--json')).map((l) => l.path.join(' '))
    assert.deepEqual(
      without,
      ['help'].filter((c) => without.includes(c)),
      `commands without --json: ${without.join(', ')}`
    )
  })

  it('--set names the option and the key as typed, not a --tick-ms that does not exist', async () => {
    const temp = tempDir()
    try {
      const r = await runCli(['cluster', 'up', '--dir', join(temp.path, 'c'), '--set', 'tick-ms=abc'])
      assert.equal(r.code, 2)
      assert.match(r.stderr, /--set .*tick-ms=abc.* tick-ms: expected a whole number from 1 to 10000, got "abc"/)
      assert.doesNotMatch(r.stderr, /--tick-ms/)
    } finally {
      temp.cleanup()
    }
  })

  it('an amount of 0 is a usage error naming --amount, not an API field', async () => {
    const r = await runCli(['pool', 'pay', '--to', 'node2', '--amount', '0'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /--amount <sats>.*expected a positive whole number of sats, got "0"/)
    assert.doesNotMatch(r.stderr, /amountSats/)
    const p = await runCli(['pool', 'partition', '--with', 'node2', '--pay', 'node2:0'])
    assert.equal(p.code, 2)
    assert.doesNotMatch(p.stderr, /amountSats/)
  })

  it('in a directory with a local cluster, the errors point at --node N and cluster start N', async () => {
    const temp = tempDir()
    try {
      await cli(['cluster', 'create', '--nodes', '2', '--dir', join(temp.path, '.poolboard-cluster')])
      const env = { POOLBOARD_DATADIR: join(temp.path, 'no-such-datadir') }
      const missing = await runCli(['status'], { cwd: temp.path, env })
      assert.equal(missing.code, 2)
      assert.match(missing.stderr, /holds a local cluster: name its node with --node N/)
      assert.doesNotMatch(missing.stderr, /poolboard init/)
      const stopped = await runCli(['status', '--node', '2'], { cwd: temp.path, env })
      assert.equal(stopped.code, 4)
      assert.match(stopped.stderr, /node2 \(no \.cookie\); start it with: poolboard cluster start 2\n$/)
      const other = await runCli(['pool', 'status', '--datadir', join(temp.path, '.poolboard-cluster', 'node1')])
      assert.match(
        other.stderr,
        new RegExp(
          `start it with: poolboard cluster start 1 --dir ${join(temp.path, '.poolboard-cluster').replace(/[.]/g, '\\.')}\\n$`
        )
      )
      const both = await runCli(['status', '--node', '1', '--datadir', temp.path], { cwd: temp.path })
      assert.equal(both.code, 2)
      assert.match(both.stderr, /cannot be used with/)
      // cluster up on the existing cluster refuses what only a new cluster takes, before starting anything.
      const up = await runCli(['cluster', 'up', '--lab', '--set', 'tick-ms=50'], { cwd: temp.path })
      assert.equal(up.code, 2)
      assert.match(up.stderr, /--lab, --set apply only to a new cluster/)
      assert.match(await cli(['cluster', 'status', '--dir', join(temp.path, '.poolboard-cluster')]), /stopped/)
    } finally {
      temp.cleanup()
    }
  })
})
