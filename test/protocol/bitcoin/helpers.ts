/**
 * Pools on chain for the tests: deterministic members, a funding output, and signing rounds run
 * among every member in one process (each member with its own MusigRound, messages exchanged as
 * bytes, as the daemon will exchange them over gossip).
 */
import { compareBytes, publicKeyOf, secretKeyFromSeed, sha256 } from '../../../protocol/index.js'
import {
  DEFAULT_GRAPH_PARAMS,
  MusigRound,
  ownersScript,
  setSignature,
  signingJobs,
  type ChainPool,
  type ChainState,
  type GraphParams,
  type GraphTx
} from '../../../protocol/bitcoin/index.js'

export interface ChainMember {
  secretKey: Uint8Array
  publicKey: Uint8Array
}

/** `n` deterministic members, sorted by key. */
export function chainMembers(n: number, tag = 'chain'): ChainMember[] {
  return Array.from({ length: n }, (_, i) => {
    const secretKey = secretKeyFromSeed(new TextEncoder().encode(`${tag} member ${i}`))
    return { secretKey, publicKey: publicKeyOf(secretKey) }
  }).sort((a, b) => compareBytes(a.publicKey, b.publicKey))
}

/** A root pool of `members` with `balances`, funded by a made-up confirmed output. */
export function rootState(
  members: ChainMember[],
  balances: bigint[],
  opts: { heightT?: number; params?: GraphParams; kickoutDelayBlocks?: number } = {}
): ChainState {
  const keys = members.map((m) => m.publicKey)
  const total = balances.reduce((a, b) => a + b, 0n)
  const pool: ChainPool = {
    members: keys,
    funding: {
      txid: sha256(new TextEncoder().encode(`funding of ${members.length}`)),
      vout: 1,
      amountSats: total,
      scriptPubKey: ownersScript(keys)
    },
    kickoutDelayBlocks: opts.kickoutDelayBlocks ?? 144,
    params: opts.params ?? DEFAULT_GRAPH_PARAMS
  }
  return { pool, stateNumber: 0, heightT: opts.heightT ?? 800_000, balances }
}

/** The secret key of a member key. */
export function secretOf(members: ChainMember[], key: Uint8Array): Uint8Array {
  const m = members.find((x) => compareBytes(x.publicKey, key) === 0)
  if (m === undefined) throw new Error('not a test member')
  return m.secretKey
}

let counter = 0
function random32(): Uint8Array {
  return sha256(new TextEncoder().encode(`round randomness ${counter++}`))
}

export interface RoundStats {
  sessions: number
  messages: number
  bytes: number
}

/**
 * Sign every MuSig2 input of `txs` among `members` (those who own them): round 1 and round 2 with
 * every message exchanged, then one member aggregates. Returns the round's counts.
 */
export function signRound(members: ChainMember[], txs: readonly GraphTx[]): RoundStats {
  const entries = signingJobs(txs)
  if (entries.length === 0) return { sessions: 0, messages: 0, bytes: 0 }
  const jobs = entries.map((e) => e.job)
  const signerKeys = new Set(jobs.flatMap((j) => j.signers.map((k) => Buffer.from(k).toString('hex'))))
  const signers = members.filter((m) => signerKeys.has(Buffer.from(m.publicKey).toString('hex')))
  const rounds = signers.map((m) => new MusigRound({ secretKey: m.secretKey, jobs, random: random32() }))
  let messages = 0
  let bytes = 0
  const nonces = rounds.map((r) => r.nonceMessage())
  for (let a = 0; a < rounds.length; a++) {
    messages++
    bytes += nonces[a]!.length
    for (let b = 0; b < rounds.length; b++) if (a !== b) rounds[b]!.addNonces(signers[a]!.publicKey, nonces[a]!)
  }
  const partials = rounds.map((r) => r.partialMessage())
  for (let a = 0; a < rounds.length; a++) {
    messages++
    bytes += partials[a]!.length
    if (a !== 0) rounds[0]!.addPartials(signers[a]!.publicKey, partials[a]!)
  }
  const sigs = rounds[0]!.signatures()
  entries.forEach((e, i) => setSignature(e.tx, e.input, sigs[i]!))
  return { sessions: jobs.length, messages, bytes }
}
