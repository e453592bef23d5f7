import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/**
 * The node's Prometheus metrics (docs/operations.md, "Metrics"), named by Prometheus conventions:
 * counters end in `_total`, durations are `_seconds` histograms, amounts carry their unit
 * (`_sats`). Counts kept by components (cache hits, gossip, alarms) are read at scrape time into
 * counters; what the node times (commits, rounds) is observed as it happens.
 */

/** Seconds: from a few ms (a loopback commit) to the longest round deadline (120 s). */
const LATENCY_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]

export interface MetricSources {
  connectedMembers: () => number
  uptimeSeconds: () => number
  board: () => { term: number; role: string; leader: string | null; commit: number; applied: number; alarms: number }
  signatureCacheHits: () => number
  defenseAlarms: () => number
  gossip: () => { received: number; dropped: number }
  /** The pool as this node has applied it; null before the genesis. */
  pool: () => {
    state: number
    balances: Record<string, bigint>
    openPools: number
    partitions: number
    evidence: number
  } | null
}

export type RoundKind = 'create' | 'pay' | 'partition' | 'kick'

/** How often the event-loop delay is sampled. */
const EVENT_LOOP_SAMPLE_MS = 250

export class NodeMetrics {
  readonly registry = new Registry()
  private readonly commitSeconds: Histogram
  private readonly roundSeconds: Histogram<'kind'>
  private readonly partitionSeconds: Histogram
  private readonly rounds: Counter<'kind' | 'outcome'>
  private readonly proposalsFailed: Counter<'reason'>
  private readonly leaderChanges: Counter
  private readonly signed: Counter
  private readonly refusals: Counter<'code'>

  constructor(sources: MetricSources) {
    const registers = [this.registry]
    // The event-loop delay histogram samples on a timer: every 10 ms by default, which alone cost an
    // idle node 0.4% of a core. Every 250 ms still catches the stalls it is there for.
    collectDefaultMetrics({
      register: this.registry,
      prefix: 'poolboard_',
      eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS
    })
    this.commitSeconds = new Histogram({
      name: 'poolboard_board_commit_seconds',
      help: 'From proposing a board entry (on any node) to its commit',
      buckets: LATENCY_BUCKETS_S,
      registers
    })
    this.roundSeconds = new Histogram({
      name: 'poolboard_pool_round_seconds',
      help: 'Pool commands of this node, from the request to the answer: every signature gathered and the entry committed (or the failure)',
      labelNames: ['kind'],
      buckets: LATENCY_BUCKETS_S,
      registers
    })
    this.partitionSeconds = new Histogram({
      name: 'poolboard_pool_partition_seconds',
      help: 'Partitions this node proposed and the board accepted, from the request to the commit',
      buckets: LATENCY_BUCKETS_S,
      registers
    })
    this.rounds = new Counter({
      name: 'poolboard_pool_rounds_total',
      help: 'Pool commands of this node by kind and outcome (accepted, or the error code: unreachable, round-failed, refused, ...)',
      labelNames: ['kind', 'outcome'],
      registers
    })
    this.proposalsFailed = new Counter({
      name: 'poolboard_board_proposals_failed_total',
      help: 'Board entries this node proposed that did not commit, by reason',
      labelNames: ['reason'],
      registers
    })
    this.signed = new Counter({
      name: 'poolboard_pool_signatures_total',
      help: 'Requests of other members this member signed (states, statements, genesis)',
      registers
    })
    this.refusals = new Counter({
      name: 'poolboard_pool_refusals_total',
      help: 'Requests of other members this member refused to sign, by reason (conflict, already-signed, equivocator, ...)',
      labelNames: ['code'],
      registers
    })
    this.leaderChanges = new Counter({
      name: 'poolboard_board_leader_changes_total',
      help: 'Times the board leader this node knows changed (to another member or to none)',
      registers
    })

    const gauge = (name: string, help: string, read: () => number): void => {
      this.registry.registerMetric(
        new Gauge({
          name,
          help,
          registers: [],
          collect() {
            this.set(read())
          }
        })
      )
    }
    /** A count a component keeps, exposed as a counter (it only grows while the process runs). */
    const counted = (name: string, help: string, read: () => number): void => {
      this.registry.registerMetric(
        new Counter({
          name,
          help,
          registers: [],
          collect() {
            this.reset()
            this.inc(read())
          }
        })
      )
    }
    gauge(
      'poolboard_connected_members',
      'Pool members (other than this node) with an open libp2p connection',
      sources.connectedMembers
    )
    gauge('poolboard_uptime_seconds', 'Seconds since the node started', sources.uptimeSeconds)
    gauge('poolboard_board_term', 'Current Raft term of the board', () => sources.board().term)
    gauge('poolboard_board_is_leader', '1 if this node leads the board', () =>
      sources.board().role === 'leader' ? 1 : 0
    )
    gauge(
      'poolboard_board_has_leader',
      '1 if this node knows a board leader (itself or another member); 0: the board cannot commit',
      () => (sources.board().leader === null ? 0 : 1)
    )
    gauge('poolboard_board_commit_index', 'Highest board index known committed', () => sources.board().commit)
    gauge('poolboard_board_applied_index', 'Highest board index applied on this node', () => sources.board().applied)
    counted(
      'poolboard_signature_cache_hits_total',
      'Signature checks answered by the cache',
      sources.signatureCacheHits
    )
    counted(
      'poolboard_board_alarms_total',
      'Alarms raised: a member offered a log conflicting with committed entries',
      () => sources.board().alarms
    )
    counted(
      'poolboard_defense_alarms_total',
      'Detections by the defenses against a coalition hiding a statement (GET /v1/defense)',
      sources.defenseAlarms
    )
    counted('poolboard_gossip_received_total', 'Pool gossip messages received', () => sources.gossip().received)
    counted(
      'poolboard_gossip_dropped_total',
      'Pool gossip messages dropped: malformed, forged, from a stranger, over a limit',
      () => sources.gossip().dropped
    )

    const poolGauge = (
      name: string,
      help: string,
      read: (p: NonNullable<ReturnType<MetricSources['pool']>>) => number
    ): void => {
      gauge(name, help, () => {
        const p = sources.pool()
        return p === null ? 0 : read(p)
      })
    }
    gauge('poolboard_pool_exists', '1 once the board holds a pool', () => (sources.pool() === null ? 0 : 1))
    poolGauge('poolboard_pool_state', 'State number of the root pool', (p) => p.state)
    poolGauge(
      'poolboard_pool_open_pools',
      'Pools that take new states: the root while not partitioned, and open partitions',
      (p) => p.openPools
    )
    poolGauge('poolboard_pool_partitions', 'Partitions on the board (open or not)', (p) => p.partitions)
    poolGauge('poolboard_pool_evidence', 'Equivocation evidence on the board', (p) => p.evidence)
    this.registry.registerMetric(
      new Gauge({
        name: 'poolboard_pool_balance_sats',
        help: "Each member's funds in the pools, in sats",
        labelNames: ['member'],
        registers: [],
        collect() {
          this.reset()
          for (const [member, sats] of Object.entries(sources.pool()?.balances ?? {}))
            this.set({ member }, Number(sats))
        }
      })
    )
  }

  leaderChanged(): void {
    this.leaderChanges.inc()
  }

  /** This member answered another's request: signed (null) or refused with `code`. */
  answered(refusalCode: string | null): void {
    if (refusalCode === null) this.signed.inc()
    else this.refusals.inc({ code: /^[a-z-]{1,32}$/.test(refusalCode) ? refusalCode : 'other' })
  }

  /** Times a board proposal; a failure counts by its code (or error name). */
  async timeProposal<T>(work: () => Promise<T>): Promise<T> {
    const end = this.commitSeconds.startTimer()
    try {
      const r = await work()
      end()
      return r
    } catch (err) {
      this.proposalsFailed.inc({ reason: reasonOf(err) })
      throw err
    }
  }

  /** Times a pool command and counts its outcome. */
  async timeRound<T>(kind: RoundKind, work: () => Promise<T>): Promise<T> {
    const end = this.roundSeconds.startTimer({ kind })
    try {
      const r = await work()
      const s = end()
      if (kind === 'partition') this.partitionSeconds.observe(s)
      this.rounds.inc({ kind, outcome: 'accepted' })
      return r
    } catch (err) {
      end()
      this.rounds.inc({ kind, outcome: reasonOf(err) })
      throw err
    }
  }
}

function reasonOf(err: unknown): string {
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' && /^[a-z-]{1,32}$/.test(code) ? code : 'error'
}
