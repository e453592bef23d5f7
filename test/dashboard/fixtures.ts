import type { RunRecord } from '../../daemon/lab/campaign/runner.js'
import { DEFENSE_SETS } from '../../daemon/lab/campaign/plan.js'
import { summarize, type Summary } from '../../daemon/lab/campaign/report.js'

/** A campaign's summary as `--coalition 0..5 --defenses every --runs 3` makes it: every defense set and size. */
export function everyDefenseSummary(): Summary {
  const records: RunRecord[] = []
  let run = 0
  for (let k = 0; k <= 5; k++) {
    for (const defense of DEFENSE_SETS) {
      for (let seed = 0; seed < 3; seed++) {
        const fooled = defense === 'none' ? k >= 4 : defense !== 'all' && k >= 4 && seed === 0
        const detected = defense !== 'none' && k > 0 && seed !== 2
        records.push({
          run: run++,
          seed,
          replay: '',
          members: 7,
          defense,
          cast: { a: 'node1', b: 'node2', c: 'node3' },
          coalition: { size: k, members: [], leader: null, led: k > 0, leaderAtOffer: null },
          holdersOffline: [],
          answerOrder: [],
          s1: null,
          s2: null,
          fooled,
          acceptedByC: fooled,
          acceptedByHonest: [],
          cRefusal: fooled ? null : { code: 'conflict', reason: '' },
          cCaughtUp: true,
          detections: detected
            ? [
                {
                  node: 'node3',
                  role: 'C',
                  defense: defense === 'all' ? 'quorum-read' : (defense as 'quorum-read'),
                  how: 'detected',
                  atMs: -100,
                  message: ''
                }
              ]
            : [],
          learned: [],
          timeline: {},
          durationMs: 1,
          error: null
        })
      }
    }
  }
  return summarize(records, {
    command: 'poolboard lab coalition-drop --members 7 --coalition 0..5 --defenses every --runs 3 --seed 1',
    durationMs: 600_000,
    createdAt: '2026-12-04T00:00:00.000Z',
    version: '0.1.0',
    machine: '2 x test CPU, 24 GiB, linux, node v20'
  })
}
