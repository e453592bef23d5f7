import '../daemon/host/polyfill.js'
import { UsageError } from './lib.js'

/** `npm run bench -- NAME [options]`: each benchmark is a module in bench/ exporting `run(args)`. */
const BENCHMARKS: Record<
  string,
  { description: string; load: () => Promise<{ run: (args: string[]) => Promise<void> }> }
> = {
  cluster: {
    description: 'time from cluster up to fully connected (3 and 7 nodes), RSS of an idle node',
    load: async () => await import('./cluster.js')
  },
  wire: {
    description:
      'Raft wire codec encode/decode throughput (appends of 1, 16, 256 entries) and transport round trips/s with p50/p99 between two nodes',
    load: async () => await import('./wire.js')
  },
  board: {
    description:
      'board appends/s and p50/p99 commit latency (1, 16, 64 clients; 3 and 5 nodes), failover, catch-up, RSS',
    load: async () => await import('./board.js')
  },
  'compare-etcd': {
    description:
      'etcd and the board side by side (3 and 5 members; 1, 16, 64 clients): writes/s, p50/p99, failover; --entries statements adds signed partition statements',
    load: async () => await import('./compare-etcd.js')
  },
  scale: {
    description:
      'pools of many members: 16/32/64 real nodes (connected, pool created, idle CPU and RSS, payment and partition p50/p99, agreement after restart) and the 1,000-member simulation (messages, bytes, CPU per member per round)',
    load: async () => await import('./scale.js')
  },
  dashboard: {
    description:
      "change to page: payment answered -> new state in the dashboard's DOM in Chromium (payer's page, another member's), p50/p99 against the 1 s goal",
    load: async () => await import('./dashboard.js')
  },
  musig: {
    description:
      "one 16-signer MuSig2 session (scure JS vs libsecp256k1-zkp WASM); per state of 4, 16, 64 members: sessions, messages, bytes, each round's CPU time",
    load: async () => await import('./musig.js')
  },
  profile: {
    description:
      'where a CPU-profiled process spent its time (.cpuprofile files written by bench/profile/preload.ts), by package and function',
    load: async () => await import('./profile/summary.js')
  },
  pool: {
    description:
      'partition to accepted p50/p99 (3 actives of 7 members), statements verified/s with a cold and a warm signature cache',
    load: async () => await import('./pool.js')
  }
}

async function main(): Promise<void> {
  const [name, ...args] = process.argv.slice(2)
  const bench = name === undefined ? undefined : BENCHMARKS[name]
  if (bench === undefined) {
    process.stderr.write(
      `usage: npm run bench -- NAME [options]\n\n${Object.entries(BENCHMARKS)
        .map(([n, b]) => `  ${n.padEnd(14)} ${b.description}`)
        .join('\n')}\n`
    )
    process.exit(name === undefined || name === '--help' ? 0 : 1)
  }
  await (await bench.load()).run(args)
}

main().catch((err: unknown) => {
  // A mistyped option needs its message, not a stack trace.
  const usage = err instanceof UsageError || (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS') === true
  process.stderr.write(`bench: ${usage ? (err as Error).message : ((err as Error).stack ?? String(err))}\n`)
  process.exit(1)
})
