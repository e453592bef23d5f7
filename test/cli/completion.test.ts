import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { CLI, cli } from '../helpers/process.js'

/** Runs the completion function in a real shell for the words typed so far (the last one being completed). */
async function complete(shell: 'bash' | 'zsh', words: string[]): Promise<string[]> {
  const script = await cli(['completion', shell])
  const typed = words.map((w) => `'${w}'`).join(' ')
  const call = `COMP_WORDS=(poolboard ${typed}); COMP_CWORD=${words.length}; _poolboard; printf '%s\\n' "\${COMPREPLY[@]}"`
  // zsh's bashcompinit calls the function under `emulate sh` (0-based arrays, as in bash).
  const run =
    shell === 'zsh'
      ? `${script}\nt() { emulate -L sh; setopt kshglob noshglob braceexpand; ${call}; }; t`
      : `${script}\n${call}`
  return await new Promise((resolve, reject) => {
    execFile(
      shell,
      ['-c', run],
      { env: { ...process.env, PATH: `${process.env.PATH ?? ''}` } },
      (err, stdout, stderr) => {
        if (err !== null) {
          reject(new Error(`${shell}: ${stderr}`))
          return
        }
        resolve(
          stdout
            .split('\n')
            .filter((l) => l !== '')
            .sort()
        )
      }
    )
  })
}

/** Shell completion made from the command tree (docs/operations.md, "Shell completion"). */
describe('poolboard completion', function () {
  this.timeout(60_000)

  it('bash completes commands, subcommands and options of the command typed so far', async () => {
    assert.ok(CLI.length > 0)
    assert.deepEqual(await complete('bash', ['po']), ['pool'])
    assert.deepEqual(await complete('bash', ['pool', 'pa']), ['partition', 'pay'])
    assert.deepEqual(
      await complete('bash', ['pool', 'pay', '--datadir', 'x', '--a']),
      ['--amount'],
      "an option's value is not a subcommand"
    )
    assert.deepEqual(await complete('bash', ['cluster', 'st']), ['start', 'status', 'stop'])
    assert.deepEqual(await complete('bash', ['help', 'pool', 'p']), [], 'help takes free words')
  })

  it('zsh runs the same function through bashcompinit', async function () {
    if (!existsSync('/usr/bin/zsh') && !existsSync('/bin/zsh')) this.skip() // zsh is not installed on every machine
    // zsh's compgen hands back every candidate; zsh itself keeps those that start with the word.
    const got = await complete('zsh', ['pool', 'pa'])
    assert.deepEqual(
      got.filter((w) => w.startsWith('pa')),
      ['partition', 'pay']
    )
    assert.ok(got.includes('create') && !got.includes('cluster'), 'the candidates are those of pool')
  })

  it('an unknown shell is a usage error', async () => {
    await assert.rejects(cli(['completion', 'fish']), /exited 2: poolboard: .*expected bash or zsh, got "fish"/)
  })
})
