import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BoardClient } from '../helpers/board.js'
import { TestCluster } from '../helpers/cluster.js'
import { isAlive } from '../helpers/process.js'

const LIAR = fileURLToPath(new URL('./liar.ts', import.meta.url))
const TSX = fileURLToPath(new URL('../../node_modules/.bin/tsx', import.meta.url))

/** Runs the lying member (a separate process holding a real member's node.key) to completion. */
async function lie(attack: string, keyFile: string, term: number, targets: string[]): Promise<string> {
  return await new Promise((resolve, reject) => {
    execFile(TSX, [LIAR, attack, keyFile, String(term), ...targets], { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`liar ${attack} failed: ${stderr}`))
      else resolve(stdout.trim())
    })
  })
}

const alarmLines = (log: string): number => log.split('\n').filter((l) => l.includes('board alarm')).length

// Rule (issue 11, "liveness must survive any one member's frames"): a process that dials the
// cluster with a real member's node.key and sends lying Raft frames stops nothing: the board keeps
// committing under the same leader, no term reaches the codec's limit, the liar is never followed,
// and what it causes in the logs is rate-limited.
describe('hostile: a member that lies in its Raft frames', function () {
  this.timeout(300_000)
  let cluster: TestCluster
  let board: BoardClient
  let leader: number
  let liar: number
  let honest: number[]
  let seq = 0

  before(async () => {
    cluster = await TestCluster.up(3, ['--lab'])
    board = new BoardClient(cluster)
    leader = await board.waitForLeader()
    liar = [1, 2, 3].find((i) => i !== leader)!
    honest = [1, 2, 3].filter((i) => i !== liar)
    // The liar takes over member `liar`'s identity: that node stops, its key lies.
    await cluster.run('stop', String(liar))
  })
  after(async () => {
    await cluster?.destroy()
  })

  for (const attack of ['max-term', 'max-index', 'impersonate', 'higher-term']) {
    it(attack, async () => {
      const nodes = await cluster.status()
      const before = await board.status(leader)
      const logBefore = honest.map((i) => alarmLines(cluster.log(i)))
      const targets = honest.map((i) => `${nodes[i - 1].peerId}@${nodes[i - 1].listen}`)
      const out = await lie(attack, join(cluster.datadir(liar), 'node.key'), before.term, targets)
      assert.match(out, /^sent 2000$/)
      // The board keeps committing, under the same leader, in a plausible term.
      const appended = await board.appendOn(leader, `after ${attack} ${seq++}`)
      await board.waitApplied(honest, appended.index)
      for (const i of honest) {
        const s = await board.status(i)
        assert.equal(s.leader?.peerId, nodes[leader - 1].peerId, `node${i} still follows node${leader}`)
        assert.equal(s.term, before.term, `node${i} stays in term ${before.term}`)
        const pid = nodes[i - 1].pid
        assert.ok(pid !== null && isAlive(pid))
        // 1,000 refused frames: the liar is throttled, then its frames are dropped for a while.
        assert.deepEqual(
          s.quarantined.map((m) => m.name),
          [`node${liar}`],
          `node${i} quarantines the liar`
        )
      }
      const added = honest.map((i, k) => alarmLines(cluster.log(i)) - logBefore[k])
      for (const n of added) assert.ok(n <= 4, `${n} alarm lines for 2,000 lying frames (rate-limited)`)
      process.stderr.write(
        `      ${attack}: term ${before.term} kept, alarm lines added ${added.join('/')}, quarantined on leader: ${(await board.status(leader)).quarantined.length}\n`
      )
    })
  }
})
