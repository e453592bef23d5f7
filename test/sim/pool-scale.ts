import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import {
  encodeBlocksEntry,
  encodeGenesisEntry,
  encodeKickoutEntry,
  encodeStateEntry,
  encodeStatementEntry
} from '../../board/entries.js'
import { PoolBoard } from '../../board/pool-board.js'
import { makeEntry, ZERO_HASH, type Entry } from '../../board/raft/index.js'
import { SignatureCache } from '../../board/signature-cache.js'
import { decidePartitionOn, decideUpdateOn, type DecisionNames } from '../../daemon/pool/decide.js'
import { encodeGossip, type GossipMessage } from '../../daemon/net/gossip.js'
import { renderTable } from '../../daemon/host/table.js'
import { toHex } from '../../protocol/bytes.js'
import { describePoolRef, describeStateRef, type PoolRef } from '../../protocol/common.js'
import { makeGenesis, poolIdOf } from '../../protocol/genesis.js'
import { publicKeyOf, secretKeyFromSeed } from '../../protocol/keys.js'
import {
  makeSignatureShare,
  signPartitionRequest,
  signUpdateRequest,
  type PartitionRequest,
  type UpdateRequest
} from '../../protocol/requests.js'
import { initialState, makePartitionRequest, makeUpdateRequest } from '../../protocol/rules.js'
import { stateHash, type PoolState } from '../../protocol/state.js'
import { withStatementSignatures } from '../../protocol/statement.js'
import { Prng } from './prng.js'

/**
 * A pool of 1,000 members in one process: the real protocol objects and their encodings, the real
 * board state machine (PoolBoard) and the daemon's own decisions (daemon/pool/decide.ts), over a
 * simulated network. Seeded: the same seed gives the same members, topology, choices, messages
 * and board, so a failure replays exactly (`npm run sim:scale -- --seed N`); only CPU times vary.
 *
 * What is simulated:
 * - gossip: each member keeps links to `meshDegree` others at random (gossipsub's mesh); a message
 *   floods the mesh, every member forwarding what it sees first to its other links; every copy a
 *   member receives is counted (messages and bytes of its real encoding), duplicates included;
 * - the board: entries are ordered by one leader, which sends each to every other member (Raft's
 *   append; heartbeats not counted); Raft itself is the Raft simulator's (test/sim/sim.ts).
 *
 * Who does the work: `sampled` members (the proposer among them) run everything for real with
 * their own board and signature cache: they decide, sign, and apply every entry, checking every
 * signature. Their CPU is what the report gives per member. The other members sign with their own
 * keys what the same decision gives them (it is deterministic, and the sampled ones computed it),
 * which keeps a 1,000-member run within seconds.
 *
 * Invariants after every entry, on every sampled board: the board's own consistency check, value
 * conserved (held + left on chain = the pool's total), no outpoint spent by two accepted
 * statements, and every sampled board in the same state.
 */

export interface ScaleOptions {
  members: number
  seed: number
  /** Actives of the first partition (default 60% of the members), and of the partition of it (half of those). */
  actives?: number
  subActives?: number
  /** Payment rounds before the partitions. */
  updates?: number
  /** Members that run everything for real (the proposer is one). */
  sampled?: number
  meshDegree?: number
}

export interface RoundReport {
  round: string
  signers: number
  /** Per member: copies received (gossip with duplicates, plus board appends), and their bytes. */
  messagesPerMember: number
  bytesPerMember: number
  /** Gossip copies sent in the whole pool for this round. */
  gossipCopies: number
  /** Most hops any gossip message of the round took to reach a member. */
  maxHops: number
  /** CPU of a sampled non-proposer member for the round (decide, sign, apply), and of the proposer. */
  cpuMsPerMember: number
  cpuMsProposer: number
  outcome: string
}

export interface ScaleReport {
  members: number
  seed: number
  sampled: number
  meshDegree: number
  rounds: RoundReport[]
  invariantChecks: number
  totalSats: string
}

export class ScaleViolation extends Error {}

interface SimMember {
  index: number
  name: string
  key: Uint8Array
  secret: Uint8Array
  /** Sampled members only. */
  board: PoolBoard | null
}

const BALANCE_SATS = 100_000n
const KICKOUT_DELAY_BLOCKS = 6
const START_MS = 1_800_000_000_000

export function runScaleSimulation(o: ScaleOptions): ScaleReport {
  const n = o.members
  const actives = o.actives ?? Math.round(n * 0.6)
  const subActives = o.subActives ?? Math.round(actives / 2)
  const updates = o.updates ?? 2
  const sampledCount = Math.min(n, Math.max(2, o.sampled ?? 6))
  const degree = Math.min(n - 1, o.meshDegree ?? 8)
  if (subActives < 2 || subActives > actives || actives > n)
    throw new RangeError('need 2 <= subActives <= actives <= members')
  const rng = new Prng(o.seed)
  const bytes32 = (): Uint8Array => Uint8Array.from({ length: 32 }, () => rng.int(256))

  // ---- members, keys, topology ----
  const members: SimMember[] = Array.from({ length: n }, (_, i) => {
    const secret = secretKeyFromSeed(new TextEncoder().encode(`scale ${o.seed} member ${i}`))
    return { index: i, name: `m${i}`, key: publicKeyOf(secret), secret, board: null }
  })
  const sampled = new Set<number>([0])
  while (sampled.size < sampledCount) sampled.add(rng.int(n))
  for (const i of sampled) members[i].board = new PoolBoard({ signatureCache: new SignatureCache(4 * n + 1024) })
  const byKey = new Map(members.map((m) => [toHex(m.key), m]))
  const links: Array<Set<number>> = members.map(() => new Set())
  for (let i = 0; i < n; i++) {
    while (links[i].size < Math.ceil(degree / 2)) {
      const j = rng.int(n)
      if (j !== i) {
        links[i].add(j)
        links[j].add(i)
      }
    }
  }

  // ---- accounting ----
  const received = new Float64Array(n)
  const receivedBytes = new Float64Array(n)
  let gossipCopies = 0
  let maxHops = 0
  const cpuMs = new Map<number, number>()
  const timed = <T>(who: number, fn: () => T): T => {
    if (!sampled.has(who)) return fn()
    const t0 = process.cpuUsage()
    try {
      return fn()
    } finally {
      const d = process.cpuUsage(t0)
      cpuMs.set(who, (cpuMs.get(who) ?? 0) + (d.user + d.system) / 1000)
    }
  }
  /** Floods one gossip message from `from` over the mesh; counts every copy received. */
  const gossip = (from: number, msg: GossipMessage): void => {
    const size = encodeGossip(msg).length
    const hops = new Int32Array(n).fill(-1)
    hops[from] = 0
    let frontier = [from]
    while (frontier.length > 0) {
      const next: number[] = []
      for (const u of frontier) {
        for (const v of links[u]) {
          gossipCopies++
          received[v]++
          receivedBytes[v] += size
          if (hops[v] < 0) {
            hops[v] = hops[u] + 1
            maxHops = Math.max(maxHops, hops[v])
            next.push(v)
          }
        }
      }
      frontier = next
    }
  }

  // ---- the board ----
  const log: Entry[] = []
  let invariantChecks = 0
  let totalSats = 0n
  const boards = (): PoolBoard[] => [...sampled].map((i) => members[i].board!)
  const append = (data: Uint8Array, leader: number): string => {
    const prev = log.length === 0 ? ZERO_HASH : log[log.length - 1].hash
    const entry = makeEntry(prev, log.length + 1, 1, 'normal', data)
    log.push(entry)
    for (let i = 0; i < n; i++)
      if (i !== leader) {
        received[i]++
        receivedBytes[i] += data.length
      }
    const outcomes = new Set<string>()
    for (const i of sampled) outcomes.add(timed(i, () => members[i].board!.apply(entry).result.outcome))
    if (outcomes.size !== 1)
      throw new ScaleViolation(
        `entry ${entry.index}: sampled boards disagree on its outcome (${[...outcomes].join(', ')})`
      )
    checkInvariants(entry.index)
    return [...outcomes][0]
  }
  const checkInvariants = (index: number): void => {
    let reference: string | null = null
    for (const b of boards()) {
      invariantChecks++
      try {
        b.checkConsistency()
      } catch (err) {
        throw new ScaleViolation(`entry ${index}: board inconsistent: ${(err as Error).message}`)
      }
      if (b.genesis === null) continue
      const value = b.valueHeldSats() + b.onChainExitSats()
      if (value !== totalSats)
        throw new ScaleViolation(
          `entry ${index}: value not conserved: ${value} sats held or exited, the pool was made with ${totalSats}`
        )
      const spentBy = new Map<string, string>()
      for (const v of b.poolList()) {
        if (v.ref.kind !== 'partition') continue
        const s = b.statement(v.ref.statementId)
        if (s === undefined || s.statement === null) continue
        for (const o of s.statement.spent) {
          const k = `${toHex(o.txid)}:${o.vout}`
          const other = spentBy.get(k)
          if (other !== undefined && other !== toHex(s.id))
            throw new ScaleViolation(
              `entry ${index}: outpoint ${k} spent by accepted statements ${other.slice(0, 16)} and ${toHex(s.id).slice(0, 16)}`
            )
          spentBy.set(k, toHex(s.id))
        }
      }
      const digest = JSON.stringify(
        b
          .poolList()
          .map((v) => [describePoolRef(v.ref), v.status, v.stateNumber, v.members.map((m) => String(m.balanceSats))])
      )
      if (reference === null) reference = digest
      else if (digest !== reference) throw new ScaleViolation(`entry ${index}: sampled boards differ`)
    }
  }

  const names = (_board: PoolBoard): DecisionNames => ({
    label: (r) => describePoolRef(r),
    stateLabel: (r) => describeStateRef(r),
    describeStatement: (c) => toHex(c.id).slice(0, 16),
    ownerOf: (_p, o) => `${toHex(o.txid).slice(0, 8)}:${o.vout}`
  })

  const rounds: RoundReport[] = []
  const round = (name: string, signers: number, body: () => string): void => {
    received.fill(0)
    receivedBytes.fill(0)
    gossipCopies = 0
    maxHops = 0
    cpuMs.clear()
    const outcome = body()
    const others = [...sampled].filter((i) => i !== 0)
    const mean = (xs: ArrayLike<number>): number => Array.from(xs).reduce((a, b) => a + b, 0) / Math.max(1, xs.length)
    rounds.push({
      round: name,
      signers,
      messagesPerMember: mean(received),
      bytesPerMember: mean(receivedBytes),
      gossipCopies,
      maxHops,
      cpuMsPerMember: mean(others.map((i) => cpuMs.get(i) ?? 0)),
      cpuMsProposer: cpuMs.get(0) ?? 0,
      outcome
    })
  }
  let nowMs = START_MS

  /**
   * One signing round: the proposer gossips the request; each signer decides (sampled ones for
   * real, the others take the verdict) and gossips its share; the proposer checks every share.
   */
  const signRound = (
    request: GossipMessage,
    signers: readonly SimMember[],
    decide: (m: SimMember) => Uint8Array | null
  ): Map<string, Uint8Array> => {
    gossip(0, request)
    let verdict: Uint8Array | null = null
    const shares = new Map<string, Uint8Array>()
    const kind = request.kind === 'partition-request' ? 'statement' : 'state'
    const roundId =
      request.kind === 'partition-request' || request.kind === 'update-request'
        ? request.request.roundId
        : request.kind === 'genesis-proposal'
          ? request.proposal.roundId
          : bytes32()
    const poolId =
      request.kind === 'partition-request' || request.kind === 'update-request'
        ? request.request.poolId
        : new Uint8Array(32)
    // The sampled members decide first: the others then sign what they decided.
    const ordered = [...signers.filter((m) => m.board !== null), ...signers.filter((m) => m.board === null)]
    for (const m of ordered) {
      const subject: Uint8Array | null = m.board !== null ? timed(m.index, () => decide(m)) : verdict
      if (m.board !== null) {
        if (verdict !== null && subject !== null && toHex(subject) !== toHex(verdict))
          throw new ScaleViolation(`${m.name} decided another subject than the other sampled members`)
        verdict = subject
      }
      if (subject === null) continue
      const share = timed(m.index, () =>
        makeSignatureShare({ kind, poolId, roundId, subject, member: m.key }, m.secret, bytes32())
      )
      if (m.index !== 0) gossip(m.index, { kind: 'share', share })
      shares.set(toHex(m.key), share.signature)
    }
    if (verdict === null) throw new ScaleViolation('no sampled member among the signers decided')
    // The proposer checks every share before it builds the signed object (its cache remembers them for apply).
    timed(0, () => {
      const cache = members[0].board!.signatureCache
      for (const [k, sig] of shares)
        if (!cache.verify(sig, verdict!, byKey.get(k)!.key))
          throw new ScaleViolation(`share of ${byKey.get(k)!.name} does not verify`)
    })
    return shares
  }

  // ---- genesis: every member signs state 0 ----
  const genesis = makeGenesis({
    members: members.map((m) => ({
      key: m.key,
      peerId: `12D3KooWsim${String(m.index).padStart(41, '0')}`,
      balanceSats: BALANCE_SATS
    })),
    funding: { txid: bytes32(), vout: 0 },
    kickoutDelayBlocks: KICKOUT_DELAY_BLOCKS,
    creationHeight: 0
  })
  totalSats = BALANCE_SATS * BigInt(n)
  const state0 = initialState(genesis)
  round('genesis', n, () => {
    const hash0 = new Map<number, Uint8Array>()
    const shares = signRound(
      { kind: 'genesis-proposal', proposal: { roundId: bytes32(), deadlineMs: nowMs + 60_000, genesis } },
      members,
      (m) => {
        // What decideGenesis checks that the simulation can: the genesis lists me; then state 0's hash.
        if (!genesis.members.some((g) => toHex(g.key) === toHex(m.key))) return null
        const h = stateHash(initialState(genesis))
        hash0.set(m.index, h)
        return h
      }
    )
    const signatures = state0.pool.members.map((k) => shares.get(toHex(k))!)
    return append(encodeGenesisEntry(genesis, { state: state0, signatures }), 0)
  })
  if (toHex(poolIdOf(genesis)) !== toHex(members[0].board!.poolId!))
    throw new ScaleViolation('the board holds another pool')

  // ---- updates: payments signed by every member ----
  const pay = (poolRef: PoolRef, from: SimMember, to: SimMember, amountSats: bigint, label: string): void => {
    const board = members[0].board!
    const current = board.currentState(poolRef)!
    const signers = current.pool.members.map((k) => byKey.get(toHex(k))!)
    round(label, signers.length, () => {
      nowMs += 1_000
      const request: UpdateRequest = timed(0, () =>
        signUpdateRequest(
          makeUpdateRequest(current, {
            proposer: from.key,
            payment: { payer: from.key, payee: to.key, amountSats },
            heightT: board.chainHeight,
            deadlineMs: nowMs + 60_000,
            roundId: bytes32()
          }),
          from.secret,
          bytes32()
        )
      )
      let proposed: PoolState | null = null
      const shares = signRound({ kind: 'update-request', request }, signers, (m) => {
        const d = decideUpdateOn(m.board!, m.key, request, nowMs, names(m.board!))
        if (d !== null) proposed = d.proposed
        return d?.hash ?? null
      })
      const state = proposed as PoolState | null
      if (state === null) throw new ScaleViolation('nobody proposed a state')
      return append(encodeStateEntry({ state, signatures: state.pool.members.map((k) => shares.get(toHex(k))!) }), 0)
    })
  }
  for (let u = 0; u < updates; u++)
    pay({ kind: 'root' }, members[0], members[1 + rng.int(n - 1)], BigInt(100 + rng.int(900)), `update ${u + 1}`)

  // ---- partitions: among `actives` (the proposer among them), then among half of those ----
  const partition = (parentRef: PoolRef, chosen: SimMember[], label: string): PoolRef => {
    const board = members[0].board!
    const parent = board.currentState(parentRef)!
    const keys = chosen.map((m) => m.key).sort((a, b) => (toHex(a) < toHex(b) ? -1 : 1))
    const balances = keys.map((k) => parent.balances[parent.pool.members.findIndex((x) => toHex(x) === toHex(k))])
    let made: PoolRef | null = null
    round(label, keys.length, () => {
      nowMs += 1_000
      const request: PartitionRequest = timed(0, () =>
        signPartitionRequest(
          makePartitionRequest(parent, {
            proposer: members[0].key,
            actives: keys,
            newBalances: balances,
            heightT: board.chainHeight,
            deadlineMs: nowMs + 60_000,
            roundId: bytes32()
          }),
          members[0].secret,
          bytes32()
        )
      )
      let statement: ReturnType<typeof decidePartitionOn> = null
      const signers = keys.map((k) => byKey.get(toHex(k))!)
      const shares = signRound({ kind: 'partition-request', request }, signers, (m) => {
        const d = decidePartitionOn(m.board!, m.key, request, nowMs, names(m.board!))
        if (d !== null) statement = d
        return d?.id ?? null
      })
      const d = statement as ReturnType<typeof decidePartitionOn>
      if (d === null) throw new ScaleViolation('no statement decided')
      const complete = timed(0, () =>
        withStatementSignatures(
          d.statement,
          [...shares].map(([k, signature]) => ({ key: byKey.get(k)!.key, signature }))
        )
      )
      const outcome = append(encodeStatementEntry(complete), 0)
      made = { kind: 'partition', statementId: d.id }
      return outcome
    })
    return made!
  }
  const pick = (from: readonly SimMember[], count: number): SimMember[] => {
    const rest = from.filter((m) => m.index !== 0)
    for (let i = rest.length - 1; i > 0; i--) {
      const j = rng.int(i + 1)
      ;[rest[i], rest[j]] = [rest[j], rest[i]]
    }
    return [members[0], ...rest.slice(0, count - 1)]
  }
  const firstActives = pick(members, actives)
  const first = partition({ kind: 'root' }, firstActives, `partition of ${actives}`)
  const second = partition(first, pick(firstActives, subActives), `partition of ${subActives} in it`)
  pay(
    second,
    members[0],
    byKey.get(
      toHex(members[0].board!.currentState(second)!.pool.members.find((k) => toHex(k) !== toHex(members[0].key))!)
    )!,
    50n,
    'update in it'
  )

  // ---- kick-out: blocks pass X, then a member of the innermost partition is evicted ----
  const inner = members[0].board!.currentState(second)!
  const evicted = inner.pool.members.find((k) => toHex(k) !== toHex(members[0].key))!
  round('kick-out', 0, () => {
    const target = inner.heightT + KICKOUT_DELAY_BLOCKS + 1 - members[0].board!.chainHeight
    if (target > 0) append(encodeBlocksEntry(target), 0)
    return append(encodeKickoutEntry({ pool: second, stateNumber: inner.stateNumber, member: evicted }), 0)
  })
  if (members[0].board!.pool(second)?.status !== 'closed')
    throw new ScaleViolation('the kick-out did not close the partition')
  for (const r of rounds) if (r.outcome !== 'accepted') throw new ScaleViolation(`round ${r.round} was ${r.outcome}`)

  return {
    members: n,
    seed: o.seed,
    sampled: sampled.size,
    meshDegree: degree,
    rounds,
    invariantChecks,
    totalSats: String(totalSats)
  }
}

/** The report as a table, the per-round cost beside its signers. */
export function renderScaleReport(r: ScaleReport): string {
  const fmt = (x: number, d = 0): string =>
    x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d })
  return (
    `${r.members}-member pool, simulated (seed ${r.seed}; mesh degree ${r.meshDegree}; ${r.sampled} members run every check; ${r.invariantChecks} invariant checks passed)\n` +
    "goal: each round's cost per member at most linear in its signers\n" +
    renderTable(
      [
        'round',
        'signers',
        'messages / member',
        'KiB / member',
        'msgs / member / signer',
        'max hops',
        'CPU ms / member',
        'CPU ms proposer',
        'outcome'
      ],
      r.rounds.map((x) => [
        x.round,
        String(x.signers),
        fmt(x.messagesPerMember, 1),
        fmt(x.bytesPerMember / 1024, 1),
        x.signers === 0 ? '-' : fmt(x.messagesPerMember / x.signers, 2),
        String(x.maxHops),
        fmt(x.cpuMsPerMember, 1),
        fmt(x.cpuMsProposer, 1),
        x.outcome
      ]),
      { alignRight: [1, 2, 3, 4, 5, 6, 7] }
    )
  )
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({
    options: {
      members: { type: 'string', default: '1000' },
      seed: { type: 'string', default: '1' },
      sampled: { type: 'string', default: '6' }
    }
  })
  const { mkdirSync, writeFileSync } = await import('node:fs')
  const report = runScaleSimulation({
    members: Number(values.members),
    seed: Number(values.seed),
    sampled: Number(values.sampled)
  })
  process.stdout.write(renderScaleReport(report) + '\n')
  // Next to the benchmarks' results (bench/results/, as bench/lib.ts writes them).
  const dir = fileURLToPath(new URL('../../bench/results/', import.meta.url))
  mkdirSync(dir, { recursive: true })
  const file = `${dir}scale-sim-${new Date().toISOString().replace(/[:.]/g, '-')}.json`
  writeFileSync(
    file,
    JSON.stringify(
      { benchmark: 'scale-sim', at: new Date().toISOString(), node: process.version, ...report },
      null,
      2
    ) + '\n'
  )
  process.stdout.write(`results: ${file}\n`)
}
