/**
 * Hashes: sha256, BIP340-style tagged hashes, and Bitcoin's double-sha256 txid.
 *
 * A tagged hash is `sha256(sha256(tag) || sha256(tag) || msg)` (BIP340). Every pool object that is
 * hashed or signed has its own tag, listed in `TAGS` below and nowhere else, so a signature or an id
 * made for one kind of object can never be mistaken for another.
 */
import * as nodeCrypto from 'node:crypto'

/** Node's one-shot hash (Node 20.12+), which allocates no Hash object: most of what we hash is small. */
const oneShot = (nodeCrypto as { hash?: (algorithm: string, data: Uint8Array, encoding: 'buffer') => Buffer }).hash

/** OpenSSL's sha256 through Node: two to three times as fast as a JavaScript one on the small inputs we hash. */
function digest(parts: readonly Uint8Array[]): Uint8Array {
  let out: Buffer
  if (oneShot !== undefined) {
    out = oneShot('sha256', parts.length === 1 ? parts[0]! : Buffer.concat(parts), 'buffer')
  } else {
    const h = nodeCrypto.createHash('sha256')
    for (const p of parts) h.update(p)
    out = h.digest()
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}

/** Every tag used by poolboard. Adding an object type means adding its tag here. */
export const TAGS = {
  /** `poolId` = tagged hash of the canonical genesis encoding. */
  genesis: 'poolboard/genesis',
  /** State hash: what every member signs to make a (sub-)pool state final. */
  state: 'poolboard/state',
  /** Commitment used as the output key of a state's Update transaction. */
  stateCommitment: 'poolboard/state-commitment',
  /** Commitment used as the output key of a Withdraw's remainder output. */
  withdrawRemainder: 'poolboard/withdraw-remainder',
  /** Signing hash of an update request. */
  updateRequest: 'poolboard/update-request',
  /** Signing hash of a partition request. */
  partitionRequest: 'poolboard/partition-request',
  /** Signing hash of a merge request (fold a frozen pool's partitions back into it). */
  mergeRequest: 'poolboard/merge-request',
  /** `statementId` = signing hash of a partition statement (its unsigned encoding). */
  partitionStatement: 'poolboard/partition-statement',
  /** Commitment used as the output key of a partition's intermediate Update transaction. */
  partitionCommitment: 'poolboard/partition-commitment',
  /** Id of an equivocation evidence object (for de-duplication). */
  evidence: 'poolboard/evidence',
  /** Deterministic secret keys derived from a seed (tests, simulations). */
  keySeed: 'poolboard/key-seed',
  /** A node's answer binding its member key to its libp2p peer id (daemon/net/gossip.ts). */
  hello: 'poolboard/hello',
  /** A member's signed refusal to sign a round, with the reason (daemon/net/gossip.ts). */
  refusal: 'poolboard/refusal',
  /** BIP341 key tweak of a Taproot output (protocol/bitcoin). */
  tapTweak: 'TapTweak',
  /** BIP341 signature message of a Taproot input (protocol/bitcoin). */
  tapSighash: 'TapSighash',
  /** Seed of a member's MuSig2 nonce: its randomness, key and the session (protocol/bitcoin/musig.ts). */
  musigNonce: 'poolboard/musig-nonce',
  /** Hash of every public nonce of a MuSig2 round, sent with the partial signatures (musig.ts). */
  musigTranscript: 'poolboard/musig-transcript'
} as const

export type TagName = keyof typeof TAGS
export type Tag = (typeof TAGS)[TagName]

/** Plain sha256. */
export function sha256(msg: Uint8Array): Uint8Array {
  return digest([msg])
}

/** Bitcoin's double sha256 (as used for txids, internal byte order). */
export function sha256d(msg: Uint8Array): Uint8Array {
  return digest([digest([msg])])
}

const textEncoder = new TextEncoder()

// sha256(tag) for every tag, computed once. The map is filled at module load and never mutated.
const TAG_PREFIX: ReadonlyMap<string, Uint8Array> = new Map(
  Object.values(TAGS).map((tag) => {
    const th = digest([textEncoder.encode(tag)])
    const prefix = new Uint8Array(64)
    prefix.set(th, 0)
    prefix.set(th, 32)
    return [tag, prefix] as const
  })
)

/**
 * BIP340 tagged hash of the concatenation of `parts` under `tag`. Only the tags in `TAGS` are
 * accepted, which keeps the list of tags complete.
 */
export function taggedHash(tag: Tag, ...parts: Uint8Array[]): Uint8Array {
  const prefix = TAG_PREFIX.get(tag)
  if (prefix === undefined) throw new RangeError(`unknown tag ${JSON.stringify(tag)}`)
  return digest([prefix, ...parts])
}
