import { parseArgs } from 'node:util'
import { schnorr } from '@noble/curves/secp256k1.js'
import * as scure from '@scure/btc-signer/musig2.js'
import {
  DEFAULT_GRAPH_PARAMS,
  MusigRound,
  ownersScript,
  signerGroup,
  signingJobs,
  stateGraph,
  stateSigningTxs,
  tapTweak,
  type ChainState
} from '../protocol/bitcoin/index.js'
import { compareBytes, publicKeyOf, secretKeyFromSeed, sha256 } from '../protocol/index.js'
import { renderTable } from '../daemon/host/table.js'
import { countsOption, fmt, numberOption, summarize, writeResult, type Summary } from './lib.js'

/**
 * `npm run bench -- musig`: what signing a state on chain costs (docs/protocol.md section 9.7).
 *
 * 1. one 16-signer MuSig2 session (key aggregation with the Taproot tweak, nonces, partial
 *    signatures, each one verified, aggregation, BIP340 check), with @scure/btc-signer's pure-JS
 *    musig2 and with libsecp256k1-zkp in WebAssembly (what protocol/bitcoin uses);
 * 2. per state of a pool of 4, 16, 64 members (`--sizes`): MuSig2 sessions, messages and bytes
 *    each member sends, and the CPU time of each member's round 1 (nonces), of round 2 for a
 *    member that aggregates every nonce itself ("alone"), of a coordinator aggregating them once
 *    for all, of round 2 given its aggregates, and of aggregating every signature; all members run
 *    in this one process.
 */

const enc = new TextEncoder()

interface Member {
  secretKey: Uint8Array
  publicKey: Uint8Array
}

function members(n: number): Member[] {
  return Array.from({ length: n }, (_, i) => {
    const secretKey = secretKeyFromSeed(enc.encode(`bench musig ${i}`))
    return { secretKey, publicKey: publicKeyOf(secretKey) }
  }).sort((a, b) => compareBytes(a.publicKey, b.publicKey))
}

function scureSession(ms: Member[], msg: Uint8Array, verifyPartials: boolean): void {
  const plain = ms.map((m) => Uint8Array.of(2, ...m.publicKey))
  const internal = scure.keyAggExport(scure.keyAggregate(plain))
  const tweak = [tapTweak(internal)]
  const q = scure.keyAggExport(scure.keyAggregate(plain, tweak, [true]))
  const nonces = plain.map((pk, i) => scure.nonceGen(pk, undefined, q, msg, undefined, sha256(enc.encode(`n${i}`))))
  const agg = scure.nonceAggregate(nonces.map((n) => n.public))
  // Each member builds its own session and signs (fastSign: no self-check, as libsecp256k1 does).
  const partials = ms.map((m, i) =>
    new scure.Session(agg, plain, msg, tweak, [true]).sign(nonces[i]!.secret, evenY(m.secretKey), true)
  )
  const session = new scure.Session(agg, plain, msg, tweak, [true])
  if (verifyPartials)
    partials.forEach((p, i) => {
      if (
        !session.partialSigVerify(
          p,
          nonces.map((n) => n.public),
          i
        )
      )
        throw new Error('scure: partial signature does not verify')
    })
  if (!schnorr.verify(session.partialSigAgg(partials), msg, q)) throw new Error('scure: aggregate does not verify')
}

function evenY(sk: Uint8Array): Uint8Array {
  const n = schnorr.Point.CURVE().n
  const d = BigInt('0x' + Buffer.from(sk).toString('hex'))
  if (schnorr.Point.BASE.multiply(d).toBytes(true)[0] !== 3) return sk
  return Uint8Array.from(Buffer.from((n - d).toString(16).padStart(64, '0'), 'hex'))
}

/** One session through MusigRound: every member's round, then one aggregation checked under BIP340. */
function zkpSession(ms: Member[], msg: Uint8Array, run: number): void {
  const keys = ms.map((m) => m.publicKey)
  const jobs = [{ label: 'bench', message: msg, signers: keys }]
  const rs = ms.map(
    (m, i) => new MusigRound({ secretKey: m.secretKey, jobs, random: sha256(enc.encode(`r${run} ${i}`)) })
  )
  rs.forEach((a, i) =>
    rs.forEach((b, j) => {
      if (i !== j) b.addNonces(keys[i]!, a.nonceMessage())
    })
  )
  const ps = rs.map((r) => r.partialMessage())
  ps.forEach((p, i) => {
    if (i !== 0) rs[0]!.addPartials(keys[i]!, p)
  })
  const sig = rs[0]!.signatures()[0]!
  if (!schnorr.verify(sig, msg, signerGroup(keys).outputKey)) throw new Error('zkp: aggregate does not verify')
}

function time(fn: () => void): number {
  const t0 = performance.now()
  fn()
  return performance.now() - t0
}

interface SizeResult {
  members: number
  sessionsState0: number
  sessionsPerState: number
  messagesPerMember: number
  bytesPerMember: number
  bytesPerState: number
  round1Ms: Summary
  /** Round 2 of a member that aggregates every nonce itself. */
  selfAggregatingMs: number
  /** The coordinator's aggregation of every nonce, once for all. */
  coordinatorMs: number
  /** Round 2 of a member given the coordinator's aggregates. */
  round2Ms: Summary
  aggregateMs: number
  wallMs: number
}

function statePool(ms: Member[]): ChainState {
  const keys = ms.map((m) => m.publicKey)
  const balances = keys.map(() => 100_000n)
  return {
    pool: {
      members: keys,
      funding: {
        txid: sha256(enc.encode('bench funding')),
        vout: 0,
        amountSats: balances.reduce((a, b) => a + b, 0n),
        scriptPubKey: ownersScript(keys)
      },
      kickoutDelayBlocks: 144,
      params: DEFAULT_GRAPH_PARAMS
    },
    stateNumber: 1,
    heightT: 800_000,
    balances
  }
}

function measureSize(n: number): SizeResult {
  const ms = members(n)
  const s1 = statePool(ms)
  const s0 = { ...s1, stateNumber: 0 }
  const sessionsState0 = signingJobs(stateSigningTxs(s0, stateGraph(s0))).length
  const entries = signingJobs(stateSigningTxs(s1, stateGraph(s1)))
  const jobs = entries.map((e) => e.job)
  const t0 = performance.now()
  const round1: number[] = []
  const rs = ms.map((m, i) => {
    let r!: MusigRound
    round1.push(
      time(() => {
        r = new MusigRound({ secretKey: m.secretKey, jobs, random: sha256(enc.encode(`state ${i}`)) })
      })
    )
    return r
  })
  const keys = ms.map((m) => m.publicKey)
  // Member 0 coordinates: it collects every nonce, aggregates them once and sends the aggregates.
  let bytes = 0
  rs.forEach((a, i) => {
    bytes += a.nonceMessage().length
    if (i !== 0) rs[0]!.addNonces(keys[i]!, a.nonceMessage())
  })
  let aggs!: Uint8Array
  const coordinatorMs = time(() => {
    aggs = rs[0]!.aggregateNonceMessage()
  })
  bytes += aggs.length
  const ps: Uint8Array[] = []
  const selfAggregatingMs = time(() => {
    ps.push(rs[0]!.partialMessage())
  })
  const round2: number[] = []
  rs.forEach((r, i) => {
    if (i === 0) return
    round2.push(
      time(() => {
        ps.push(r.partialMessage(aggs))
      })
    )
  })
  ps.forEach((p) => {
    bytes += p.length
  })
  const aggregateMs = time(() => {
    ps.forEach((p, i) => {
      if (i !== 0) rs[0]!.addPartials(keys[i]!, p)
    })
    rs[0]!.signatures()
  })
  const wallMs = performance.now() - t0
  return {
    members: n,
    sessionsState0,
    sessionsPerState: jobs.length,
    messagesPerMember: 2,
    bytesPerMember: Math.round(bytes / n),
    bytesPerState: bytes,
    round1Ms: summarize(round1),
    selfAggregatingMs,
    coordinatorMs,
    round2Ms: summarize(round2),
    aggregateMs,
    wallMs
  }
}

export async function run(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { sizes: { type: 'string', default: '4,16,64' }, runs: { type: 'string', default: '5' } }
  })
  const sizes = countsOption('sizes', values.sizes)
  const runs = numberOption('runs', values.runs, { min: 1, integer: true })

  const ms16 = members(16)
  const msg = sha256(enc.encode('bench message'))
  scureSession(ms16, msg, true)
  zkpSession(ms16, msg, -1)
  const scureMs = summarize(Array.from({ length: runs }, () => time(() => scureSession(ms16, msg, false))))
  const scureVerifyMs = summarize(Array.from({ length: runs }, () => time(() => scureSession(ms16, msg, true))))
  const zkpMs = summarize(Array.from({ length: runs }, (_, r) => time(() => zkpSession(ms16, msg, r))))
  process.stdout.write(
    'one 16-signer MuSig2 session: 16 nonces, 16 partial signatures, one aggregate checked under BIP340 (goal: the faster of the two whose signatures BIP340 verifies)\n'
  )
  process.stdout.write(
    renderTable(
      ['implementation', 'p50 ms', 'min ms', 'max ms'],
      [
        ['@scure/btc-signer musig2 (JS)', fmt(scureMs.p50), fmt(scureMs.min), fmt(scureMs.max)],
        [
          '  same, every partial signature verified',
          fmt(scureVerifyMs.p50),
          fmt(scureVerifyMs.min),
          fmt(scureVerifyMs.max)
        ],
        ['libsecp256k1-zkp (WASM), MusigRound', fmt(zkpMs.p50), fmt(zkpMs.min), fmt(zkpMs.max)]
      ],
      { alignRight: [1, 2, 3] }
    ) + '\n\n'
  )

  const results: SizeResult[] = []
  for (const n of sizes) {
    const r = measureSize(n)
    results.push(r)
    process.stderr.write(`  ${n} members: ${fmt(r.wallMs / 1000, 1)} s\n`)
  }
  process.stdout.write(
    `per state (state 1 of a pool: ${DEFAULT_GRAPH_PARAMS.layers} layers × ${DEFAULT_GRAPH_PARAMS.statesPerLayer} states, kick-outs with their continuations), every member in this process\n`
  )
  process.stdout.write(
    renderTable(
      [
        'members',
        'sessions',
        'state 0',
        'msgs/member',
        'KiB/member',
        'KiB/state',
        'round 1 p50 ms',
        'round 2 alone ms',
        'coordinator ms',
        'round 2 p50 ms',
        'round 2 p99 ms',
        'aggregate ms',
        'wall s'
      ],
      results.map((r) => [
        String(r.members),
        String(r.sessionsPerState),
        String(r.sessionsState0),
        String(r.messagesPerMember),
        fmt(r.bytesPerMember / 1024),
        fmt(r.bytesPerState / 1024),
        fmt(r.round1Ms.p50),
        fmt(r.selfAggregatingMs),
        fmt(r.coordinatorMs),
        fmt(r.round2Ms.p50),
        fmt(r.round2Ms.p99),
        fmt(r.aggregateMs),
        fmt(r.wallMs / 1000, 2)
      ]),
      { alignRight: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] }
    ) + '\n'
  )
  process.stdout.write(
    "goal: a member's rounds 1 + 2 within a round deadline of seconds; bytes within MAX_OBJECT_BYTES (256 KiB) per message\n"
  )
  process.stdout.write(
    `results: ${writeResult('musig', { runs, session16: { scure: scureMs, scureVerifyingPartials: scureVerifyMs, zkp: zkpMs }, perState: results })}\n`
  )
}
