import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'
import { join } from 'node:path'

/**
 * A CPU profile of every process that loads this module, written when it exits: the way to
 * profile the nodes a benchmark starts, since Node refuses `--cpu-prof` in NODE_OPTIONS.
 *
 *   POOLBOARD_CPU_PROFILE_DIR=/tmp/prof NODE_OPTIONS=--import=./dist/bench/profile/preload.js \
 *     node dist/bench/run.js pool
 *
 * Only processes whose arguments contain POOLBOARD_CPU_PROFILE_MATCH (default `start`: the nodes)
 * are profiled. A process killed with SIGKILL (a failover's leader) leaves no profile.
 */
const dir = process.env.POOLBOARD_CPU_PROFILE_DIR
const match = process.env.POOLBOARD_CPU_PROFILE_MATCH ?? 'start'
/** Sampling interval: fine enough for a round of a few hundred milliseconds. */
const SAMPLING_INTERVAL_US = 500

if (dir !== undefined && dir !== '' && process.argv.slice(2).includes(match)) {
  const session = new Session()
  session.connect()
  session.post('Profiler.enable')
  session.post('Profiler.setSamplingInterval', { interval: SAMPLING_INTERVAL_US })
  session.post('Profiler.start')
  process.on('exit', () => {
    // The in-thread session answers synchronously: the profile is written before the process ends.
    session.post('Profiler.stop', (err, result) => {
      if (err !== null) return
      const dataDir = process.argv[process.argv.indexOf('--datadir') + 1] ?? ''
      const name = `${process.pid}-${dataDir.split('/').filter(Boolean).slice(-1)[0] ?? 'node'}.cpuprofile`
      writeFileSync(join(dir, name), JSON.stringify(result.profile))
    })
  })
}
