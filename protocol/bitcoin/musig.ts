/**
 * MuSig2 (BIP327) for the pool's shared outputs, and the signing round as a pure state machine.
 *
 * The arithmetic is libsecp256k1-zkp's MuSig2 module compiled to WebAssembly
 * (`@vulpemventures/secp256k1-zkp`): a 16-signer session costs about a tenth of the pure-JS
 * implementation's time (bench/musig.ts). Its results are plain BIP327/BIP340: the aggregate key
 * equals `@scure/btc-signer`'s `keyAggregate` and every aggregate signature is checked with
 * noble's BIP340 verifier before it is returned (test/protocol/bitcoin/musig.test.ts).
 *
 * A `MusigRound` signs several messages (sessions) at once, each by its own set of signers, as a
 * state's transactions need: round 1, every participant sends one public nonce per session it is
 * in; round 2, one partial signature per session. Nothing here touches the network or a clock; the
 * caller passes the randomness.
 */
import { schnorr } from '@noble/curves/secp256k1.js'
import zkpModule from '@vulpemventures/secp256k1-zkp'
import { compareBytes, concatBytes, equalBytes, toHex } from '../bytes.js'
import { short } from '../common.js'
import { TAGS, taggedHash } from '../hash.js'
import { publicKeyOf } from '../keys.js'
import { evenYSecretKey, memberOutputKey, tapTweak } from './script.js'

type Zkp = Awaited<ReturnType<typeof import('@vulpemventures/secp256k1-zkp').default>>
const init = ((zkpModule as unknown as { default?: unknown }).default ?? zkpModule) as () => Promise<Zkp>
const zkp: Zkp = await init()

export const PUBNONCE_BYTES = 66
export const PARTIAL_SIG_BYTES = 32
/** A round-2 message starts with the hash of every nonce its sender signed over. */
export const TRANSCRIPT_BYTES = 32
/** Most sessions in one round (a state of a 256-member pool needs about 6·256 + 2). */
export const MAX_ROUND_SESSIONS = 4096
/** Most signer groups whose key aggregation is kept (one per distinct set of owners). */
const MAX_CACHED_GROUPS = 4096

const CURVE_ORDER = schnorr.Point.CURVE().n

/** The owners of a shared output: their keys, the aggregate and the Taproot output key. */
export interface SignerGroup {
  /** Sorted x-only member keys, two or more. */
  keys: readonly Uint8Array[]
  /** BIP327 aggregate of the keys' even-y points: the output's internal key (x-only). */
  internalKey: Uint8Array
  /** BIP86-tweaked aggregate: the key in the output's scriptPubKey. */
  outputKey: Uint8Array
  /** libsecp256k1-zkp's key aggregation cache, with the Taproot tweak applied. */
  keyaggCache: Uint8Array
}

const groups = new Map<string, SignerGroup>()

function even(key: Uint8Array): Uint8Array {
  return concatBytes(Uint8Array.of(2), key)
}

/**
 * BIP327 KeyAgg of plain (33-byte, compressed) keys in the order given: the x-only aggregate.
 * Throws `RangeError` if a key is invalid or the aggregate is the point at infinity.
 */
export function aggregateKeys(plainKeys: readonly Uint8Array[]): Uint8Array {
  if (plainKeys.length < 1) throw new RangeError('no keys to aggregate')
  plainKeys.forEach((k, i) => {
    if (k.length !== 33) throw new RangeError(`key ${i}: expected 33 bytes, got ${k.length}`)
  })
  try {
    return zkp.musig.pubkeyAgg([...plainKeys]).aggPubkey
  } catch {
    throw new RangeError('a key is not a valid point, or the keys aggregate to infinity')
  }
}

/** BIP327 NonceAgg of 66-byte public nonces. Throws `RangeError` if one is not two valid points. */
export function aggregateNonces(pubNonces: readonly Uint8Array[]): Uint8Array {
  if (pubNonces.length < 1) throw new RangeError('no nonces to aggregate')
  pubNonces.forEach((n, i) => {
    if (n.length !== PUBNONCE_BYTES)
      throw new RangeError(`nonce ${i}: expected ${PUBNONCE_BYTES} bytes, got ${n.length}`)
  })
  try {
    return zkp.musig.nonceAgg([...pubNonces])
  } catch {
    throw new RangeError('a public nonce is not two valid points')
  }
}

/**
 * The signer group of `keys` (sorted, unique, x-only, two or more). Throws `RangeError` if they are
 * not; memoized.
 */
export function signerGroup(keys: readonly Uint8Array[]): SignerGroup {
  if (keys.length < 2) throw new RangeError(`a shared output needs two or more owners, got ${keys.length}`)
  for (let i = 0; i < keys.length; i++) {
    if (keys[i]!.length !== 32) throw new RangeError(`owner ${i}: expected a 32-byte key`)
    if (i > 0 && compareBytes(keys[i - 1]!, keys[i]!) >= 0)
      throw new RangeError(`owner ${i}: keys must be sorted and unique`)
  }
  const id = keys.map(toHex).join('')
  const cached = groups.get(id)
  if (cached !== undefined) return cached
  let agg: ReturnType<typeof zkp.musig.pubkeyAgg>
  try {
    agg = zkp.musig.pubkeyAgg(keys.map(even))
  } catch {
    throw new RangeError('owners: a key is not on the curve')
  }
  const internalKey = agg.aggPubkey
  const tweaked = zkp.musig.pubkeyXonlyTweakAdd(agg.keyaggCache, tapTweak(internalKey), true)
  const group: SignerGroup = {
    keys: keys.map((k) => new Uint8Array(k)),
    internalKey,
    outputKey: tweaked.pubkey.subarray(1),
    keyaggCache: tweaked.keyaggCache
  }
  if (groups.size >= MAX_CACHED_GROUPS) groups.delete(groups.keys().next().value!)
  groups.set(id, group)
  return group
}

/** Output key of an output owned by `owners` (sorted): a member output for one, MuSig2 for more. */
export function ownersOutputKey(owners: readonly Uint8Array[]): Uint8Array {
  return owners.length === 1 ? memberOutputKey(owners[0]!) : signerGroup(owners).outputKey
}

// ---- the signing round ----

/** One message to be signed by the owners of one shared output. */
export interface SigningJob {
  /** What is signed, for messages ("state 3: layer 2 input 0"). */
  label: string
  /** The 32-byte BIP341 signature hash. */
  message: Uint8Array
  /** Sorted owner keys (two or more). */
  signers: readonly Uint8Array[]
}

export type MusigErrorCode =
  | 'not-a-signer'
  | 'duplicate'
  | 'wrong-phase'
  | 'bad-size'
  | 'bad-nonce'
  | 'nonce-mismatch'
  | 'bad-partial-signature'

/** A refused input or call; `member` is the participant whose input was bad, when there is one. */
export class MusigError extends Error {
  readonly code: MusigErrorCode
  readonly member: Uint8Array | undefined
  constructor(code: MusigErrorCode, message: string, member?: Uint8Array) {
    super(message)
    this.name = 'MusigError'
    this.code = code
    this.member = member
  }
}

type Phase = 'nonces' | 'partials' | 'done'

/**
 * The signing of `jobs` by this member (`secretKey`). Drive it: send `nonceMessage()`, feed every
 * other participant's with `addNonces`; once `noncesComplete()`, send `partialMessage()` and feed
 * theirs with `addPartials`; once `partialsComplete()`, `signatures()` gives one BIP340 signature
 * per job. A participant's message holds its values for the jobs it signs, in job order.
 *
 * A secret nonce is used once: `partialMessage()` erases them, and a round cannot be restarted.
 * Messages carry no round id and no signature: the transport binds them to the round and to their
 * sender (the daemon's gossip signs every message with the member key), which also makes a
 * participant who sends two different nonce messages provably at fault.
 */
export class MusigRound {
  readonly jobs: readonly SigningJob[]
  readonly myKey: Uint8Array
  /** Every signer of any job, sorted. */
  readonly participants: readonly Uint8Array[]
  private readonly secretKey: Uint8Array
  private readonly groupOf: SignerGroup[]
  /** jobsOf[p] = indices of the jobs participant p signs. */
  private readonly jobsOf = new Map<string, number[]>()
  private readonly nonces: (Uint8Array | undefined)[][]
  private readonly partials: (Uint8Array | undefined)[][]
  private readonly noncesFrom = new Set<string>()
  private readonly partialsFrom = new Set<string>()
  private secNonces: Uint8Array[] | null
  private myNonces: Uint8Array
  private myPartials: Uint8Array | null = null
  private sessions: Uint8Array[] | null = null
  private transcript: Uint8Array | null = null
  private phase: Phase = 'nonces'

  constructor(params: { secretKey: Uint8Array; jobs: readonly SigningJob[]; random: Uint8Array }) {
    const { jobs, random } = params
    if (random.length !== 32) throw new RangeError('random: expected 32 bytes')
    if (jobs.length < 1 || jobs.length > MAX_ROUND_SESSIONS)
      throw new RangeError(`jobs: expected 1..${MAX_ROUND_SESSIONS}, got ${jobs.length}`)
    this.myKey = publicKeyOf(params.secretKey)
    this.secretKey = evenYSecretKey(params.secretKey)
    this.jobs = jobs
    this.groupOf = jobs.map((j, i) => {
      if (j.message.length !== 32) throw new RangeError(`job ${i} (${j.label}): message must be 32 bytes`)
      return signerGroup(j.signers)
    })
    const all = new Map<string, Uint8Array>()
    jobs.forEach((j, i) => {
      j.signers.forEach((k) => {
        const id = toHex(k)
        all.set(id, k)
        let list = this.jobsOf.get(id)
        if (list === undefined) {
          list = []
          this.jobsOf.set(id, list)
        }
        list.push(i)
      })
    })
    this.participants = [...all.values()].sort(compareBytes)
    const mine = this.jobsOf.get(toHex(this.myKey))
    if (mine === undefined) throw new MusigError('not-a-signer', `member ${short(this.myKey)} signs none of the jobs`)
    this.nonces = jobs.map((j) => j.signers.map(() => undefined))
    this.partials = jobs.map((j) => j.signers.map(() => undefined))
    // The nonce seed binds fresh randomness to the key, the message and the aggregate, so even a
    // repeated `random` never gives one nonce for two different messages (BIP327 NonceGen's idea).
    const pub = concatBytes(Uint8Array.of(2), this.myKey)
    this.secNonces = []
    const out: Uint8Array[] = []
    for (const i of mine) {
      const seed = taggedHash(
        TAGS.musigNonce,
        random,
        this.secretKey,
        u32(i),
        jobs[i]!.message,
        this.groupOf[i]!.outputKey
      )
      const n = zkp.musig.nonceGen(seed, pub)
      this.secNonces.push(n.secNonce)
      out.push(n.pubNonce)
      this.store(this.nonces, i, this.myKey, n.pubNonce)
    }
    this.myNonces = concatBytes(...out)
    this.noncesFrom.add(toHex(this.myKey))
  }

  /** The jobs `member` signs (indices), or undefined if it is not a participant. */
  jobsSignedBy(member: Uint8Array): readonly number[] | undefined {
    return this.jobsOf.get(toHex(member))
  }

  /** This member's round-1 message: its public nonces. */
  nonceMessage(): Uint8Array {
    return this.myNonces
  }

  /** Record `member`'s round-1 message. Throws `MusigError` naming the member and the problem. */
  addNonces(member: Uint8Array, message: Uint8Array): void {
    const list = this.expect(member, 'nonces', this.noncesFrom, message, PUBNONCE_BYTES, 'public nonces')
    list.forEach((jobIndex, k) => {
      const nonce = message.subarray(k * PUBNONCE_BYTES, (k + 1) * PUBNONCE_BYTES)
      // Each half is a compressed point; the curve check is zkp's, when nonces are aggregated.
      if ((nonce[0] !== 2 && nonce[0] !== 3) || (nonce[33] !== 2 && nonce[33] !== 3)) {
        throw new MusigError(
          'bad-nonce',
          `member ${short(member)}: public nonce for job ${jobIndex} (${this.jobs[jobIndex]!.label}) is not two compressed points`,
          member
        )
      }
    })
    list.forEach((jobIndex, k) =>
      this.store(this.nonces, jobIndex, member, message.slice(k * PUBNONCE_BYTES, (k + 1) * PUBNONCE_BYTES))
    )
    this.noncesFrom.add(toHex(member))
  }

  noncesComplete(): boolean {
    return this.noncesFrom.size === this.participants.length
  }

  /** Participants whose nonces are still missing. */
  missingNonces(): Uint8Array[] {
    return this.participants.filter((p) => !this.noncesFrom.has(toHex(p)))
  }

  /**
   * This member's round-2 message: the transcript (hash of the aggregate nonces it signed over),
   * then its partial signatures. With no argument, every nonce must be in and this member
   * aggregates them; with a coordinator's `aggregateNonceMessage`, it signs over those. Erases the
   * secret nonces; later calls return the same bytes. Throws `MusigError` (code `bad-nonce`,
   * naming the member) if a participant's nonce is not on the curve.
   */
  partialMessage(aggregateNonceMessage?: Uint8Array): Uint8Array {
    if (this.myPartials !== null) return this.myPartials
    if (this.phase !== 'nonces') throw new MusigError('wrong-phase', 'round 1 is over')
    let aggs: Uint8Array[]
    if (aggregateNonceMessage === undefined) {
      if (!this.noncesComplete())
        throw new MusigError('wrong-phase', `nonces missing from ${this.missingNonces().map(short).join(', ')}`)
      aggs = this.aggregates()
    } else {
      if (aggregateNonceMessage.length !== this.jobs.length * PUBNONCE_BYTES) {
        throw new MusigError(
          'bad-size',
          `aggregate nonces: expected ${this.jobs.length * PUBNONCE_BYTES} bytes (one per job), got ${aggregateNonceMessage.length}`
        )
      }
      aggs = this.jobs.map((_, i) => aggregateNonceMessage.slice(i * PUBNONCE_BYTES, (i + 1) * PUBNONCE_BYTES))
    }
    const secNonces = this.secNonces!
    this.secNonces = null
    const sessions = aggs.map((agg, i) => {
      try {
        return zkp.musig.nonceProcess(agg, this.jobs[i]!.message, this.groupOf[i]!.keyaggCache)
      } catch {
        throw new MusigError('bad-nonce', `aggregate nonce for job ${i} (${this.jobs[i]!.label}) is not valid`)
      }
    })
    this.sessions = sessions
    this.transcript = taggedHash(TAGS.musigTranscript, ...aggs)
    const mine = this.jobsOf.get(toHex(this.myKey))!
    const out = mine.map((i, k) => {
      const sig = zkp.musig.partialSign(secNonces[k]!, this.secretKey, this.groupOf[i]!.keyaggCache, sessions[i]!)
      secNonces[k]!.fill(0)
      this.store(this.partials, i, this.myKey, sig)
      return sig
    })
    this.myPartials = concatBytes(this.transcript, ...out)
    this.partialsFrom.add(toHex(this.myKey))
    this.phase = 'partials'
    return this.myPartials
  }

  /**
   * The aggregate nonce of every job (66 bytes each, in job order), once every nonce is in. A
   * coordinator may send it so that the others skip aggregating `n` nonces per job: BIP327 lets an
   * untrusted aggregator do this, since a wrong aggregate only makes the signature fail. Throws
   * `MusigError` (code `bad-nonce`, naming the member) if a nonce is not on the curve.
   */
  aggregateNonceMessage(): Uint8Array {
    if (!this.noncesComplete())
      throw new MusigError('wrong-phase', `nonces missing from ${this.missingNonces().map(short).join(', ')}`)
    return concatBytes(...this.aggregates())
  }

  private aggregates(): Uint8Array[] {
    return this.jobs.map((_, i) => {
      try {
        return aggregateNonces(this.nonces[i]! as Uint8Array[])
      } catch {
        throw this.blameNonce(i)
      }
    })
  }

  /**
   * Record `member`'s round-2 message. Throws `MusigError` naming the member and the problem; code
   * `nonce-mismatch` when it signed over other aggregate nonces than this member's (a participant
   * sent different nonces to different members, or a coordinator sent wrong aggregates: compare the
   * signed round-1 messages to find which).
   */
  addPartials(member: Uint8Array, message: Uint8Array): void {
    const list = this.expect(
      member,
      'partials',
      this.partialsFrom,
      message,
      PARTIAL_SIG_BYTES,
      'partial signatures',
      TRANSCRIPT_BYTES
    )
    if (!equalBytes(message.subarray(0, TRANSCRIPT_BYTES), this.transcript!)) {
      throw new MusigError(
        'nonce-mismatch',
        `member ${short(member)} signed over other nonces than this member received: a participant sent different nonces to different members`,
        member
      )
    }
    const body = message.subarray(TRANSCRIPT_BYTES)
    list.forEach((jobIndex, k) => {
      const s = body.subarray(k * PARTIAL_SIG_BYTES, (k + 1) * PARTIAL_SIG_BYTES)
      let x = 0n
      for (const b of s) x = (x << 8n) | BigInt(b)
      if (x >= CURVE_ORDER)
        throw new MusigError(
          'bad-partial-signature',
          `member ${short(member)}: partial signature for job ${jobIndex} (${this.jobs[jobIndex]!.label}) is not below the curve order`,
          member
        )
    })
    list.forEach((jobIndex, k) =>
      this.store(this.partials, jobIndex, member, body.slice(k * PARTIAL_SIG_BYTES, (k + 1) * PARTIAL_SIG_BYTES))
    )
    this.partialsFrom.add(toHex(member))
  }

  partialsComplete(): boolean {
    return this.partialsFrom.size === this.participants.length
  }

  missingPartials(): Uint8Array[] {
    return this.participants.filter((p) => !this.partialsFrom.has(toHex(p)))
  }

  /**
   * One 64-byte BIP340 signature per job, each verified against its output key. When one does not
   * verify, the partial signatures of that job are checked one by one and a `MusigError` names the
   * first member whose partial signature is wrong.
   */
  signatures(): Uint8Array[] {
    if (this.phase !== 'partials' || !this.partialsComplete()) {
      throw new MusigError(
        'wrong-phase',
        `partial signatures missing from ${this.missingPartials().map(short).join(', ')}`
      )
    }
    const sigs = this.jobs.map((job, i) => {
      const partials = this.partials[i]! as Uint8Array[]
      let sig: Uint8Array | null = null
      try {
        sig = zkp.musig.partialSigAgg(this.sessions![i]!, partials)
      } catch {
        sig = null
      }
      if (sig !== null && schnorr.verify(sig, job.message, this.groupOf[i]!.outputKey)) return sig
      throw this.blamePartial(i)
    })
    this.phase = 'done'
    return sigs
  }

  private expect(
    member: Uint8Array,
    phase: Phase,
    from: Set<string>,
    message: Uint8Array,
    size: number,
    what: string,
    headerBytes = 0
  ): number[] {
    const id = toHex(member)
    const list = this.jobsOf.get(id)
    if (list === undefined)
      throw new MusigError('not-a-signer', `member ${short(member)} signs none of this round's jobs`, member)
    if (phase === 'partials' && this.phase === 'nonces')
      throw new MusigError(
        'wrong-phase',
        `member ${short(member)}: partial signatures before this member has every nonce`,
        member
      )
    if (this.phase !== phase)
      throw new MusigError('wrong-phase', `member ${short(member)}: ${what} after that round closed`, member)
    if (from.has(id)) throw new MusigError('duplicate', `member ${short(member)} already sent its ${what}`, member)
    if (message.length !== headerBytes + list.length * size) {
      throw new MusigError(
        'bad-size',
        `member ${short(member)}: expected ${list.length} ${what} (${headerBytes + list.length * size} bytes), got ${message.length} bytes`,
        member
      )
    }
    return list
  }

  private store(table: (Uint8Array | undefined)[][], job: number, member: Uint8Array, value: Uint8Array): void {
    const idx = this.jobs[job]!.signers.findIndex((k) => equalBytes(k, member))
    table[job]![idx] = value
  }

  private blameNonce(job: number): MusigError {
    const signers = this.jobs[job]!.signers
    for (let k = 0; k < signers.length; k++) {
      const n = this.nonces[job]![k]!
      try {
        schnorr.Point.fromBytes(n.subarray(0, 33)).assertValidity()
        schnorr.Point.fromBytes(n.subarray(33)).assertValidity()
      } catch {
        return new MusigError(
          'bad-nonce',
          `member ${short(signers[k]!)}: public nonce for job ${job} (${this.jobs[job]!.label}) is not on the curve`,
          signers[k]
        )
      }
    }
    return new MusigError('bad-nonce', `job ${job} (${this.jobs[job]!.label}): the nonces do not aggregate`)
  }

  private blamePartial(job: number): MusigError {
    const signers = this.jobs[job]!.signers
    const g = this.groupOf[job]!
    if (!this.noncesComplete())
      return new MusigError(
        'bad-partial-signature',
        `job ${job} (${this.jobs[job]!.label}): the aggregate signature does not verify; naming the member needs every nonce (missing from ${this.missingNonces().map(short).join(', ')})`
      )
    for (let k = 0; k < signers.length; k++) {
      const ok = zkp.musig.partialVerify(
        this.partials[job]![k]!,
        this.nonces[job]![k]!,
        even(signers[k]!),
        g.keyaggCache,
        this.sessions![job]!
      )
      if (!ok)
        return new MusigError(
          'bad-partial-signature',
          `member ${short(signers[k]!)}: partial signature for job ${job} (${this.jobs[job]!.label}) does not verify`,
          signers[k]
        )
    }
    return new MusigError(
      'bad-partial-signature',
      `job ${job} (${this.jobs[job]!.label}): the aggregate signature does not verify`
    )
  }
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, n, true)
  return b
}
