import { equalBytes, fromHex, toHex } from '../../protocol/bytes.js'
import { Writer, decodeAll } from '../../protocol/codec.js'
import { short } from '../../protocol/common.js'
import { TAGS, taggedHash } from '../../protocol/hash.js'
import type { Genesis } from '../../protocol/genesis.js'
import { isValidPublicKey, signHash } from '../../protocol/keys.js'
import type { SignatureCache } from '../../board/signature-cache.js'
import type { MemberEntry } from '../host/config.js'
import type { Logger } from '../host/log.js'
import { RpcError, type MemberRpc } from '../net/rpc.js'
import { sleep } from '../host/wait.js'

/**
 * Who is who in the pool: each member's name (from the config), libp2p peer id and BIP340 member
 * key. Before the genesis exists, a node learns the others' keys by asking them over
 * `/poolboard/hello/1.0.0`: the answer is the member key and its signature over the asker-known
 * peer id, so a node cannot claim a key it does not hold, nor relay another member's answer.
 * Once the genesis is on the board, it is the authority: it binds every key to a peer id.
 *
 * Hello answer (version 1): `version u8 = 1 | memberKey 32 | signature 64` over
 * `taggedHash('poolboard/hello', peerId as UTF-8)`.
 */

export const HELLO_PROTOCOL = '/poolboard/hello/1.0.0'
const HELLO_VERSION = 1
const HELLO_TIMEOUT_MS = 3_000
const HELLO_RETRY_MS = 500

export interface Member {
  name: string
  peerId: string
  /** Known once the member answered hello, or from the genesis. */
  key: Uint8Array | null
}

export interface PoolMembersOptions {
  selfPeerId: string
  selfKey: Uint8Array
  selfSecret: Uint8Array
  /** Every member in the config, this node included. */
  members: readonly MemberEntry[]
  rpc: MemberRpc
  signatureCache: SignatureCache
  logger: Logger
}

export function helloHash(peerId: string): Uint8Array {
  return taggedHash(TAGS.hello, new TextEncoder().encode(peerId))
}

export function encodeHello(memberKey: Uint8Array, signature: Uint8Array): Uint8Array {
  return new Writer(97).u8(HELLO_VERSION).bytes32(memberKey, 'memberKey').bytes64(signature, 'signature').finish()
}

export function decodeHello(bytes: Uint8Array): { memberKey: Uint8Array; signature: Uint8Array } {
  return decodeAll(bytes, 'hello', (r) => {
    r.version([HELLO_VERSION])
    return { memberKey: r.bytes32('memberKey'), signature: r.bytes64('signature') }
  })
}

export class PoolMembers {
  private readonly byPeerId = new Map<string, Member>()
  private readonly byKey = new Map<string, Member>()

  constructor(private readonly options: PoolMembersOptions) {
    for (const m of options.members) this.byPeerId.set(m.peerId, { name: m.name, peerId: m.peerId, key: null })
    const self = this.byPeerId.get(options.selfPeerId)
    if (self !== undefined) this.bind(self, options.selfKey)
  }

  async start(): Promise<void> {
    const answer = encodeHello(
      this.options.selfKey,
      signHash(helloHash(this.options.selfPeerId), this.options.selfSecret)
    )
    await this.options.rpc.handle(HELLO_PROTOCOL, async () => answer)
  }

  get self(): Member {
    const m = this.byPeerId.get(this.options.selfPeerId)
    if (m === undefined) return { name: 'self', peerId: this.options.selfPeerId, key: this.options.selfKey }
    return m
  }

  list(): Member[] {
    return [...this.byPeerId.values()]
  }

  /** Binds keys to peer ids as the genesis says (the genesis outranks what hello taught us). */
  adoptGenesis(genesis: Genesis): void {
    for (const gm of genesis.members) {
      const m = this.byPeerId.get(gm.peerId)
      if (m === undefined) {
        // A member the config does not list by name: still known by its peer id.
        const added: Member = { name: gm.peerId.slice(-8), peerId: gm.peerId, key: null }
        this.byPeerId.set(gm.peerId, added)
        this.bind(added, gm.key)
      } else if (m.key === null || !equalBytes(m.key, gm.key)) {
        if (m.key !== null) this.byKey.delete(toHex(m.key))
        this.bind(m, gm.key)
      }
    }
  }

  /** Asks member `peerId` for its key (verifying the answer); returns the key or throws RpcError. */
  async hello(peerId: string, timeoutMs = HELLO_TIMEOUT_MS): Promise<Uint8Array> {
    const m = this.byPeerId.get(peerId)
    if (m?.key != null) return m.key
    const { memberKey, signature } = decodeHello(
      await this.options.rpc.call(peerId, HELLO_PROTOCOL, new Uint8Array(0), timeoutMs)
    )
    if (!isValidPublicKey(memberKey))
      throw new RpcError('malformed', `${peerId} answered hello with an invalid member key`)
    if (!this.options.signatureCache.verify(signature, helloHash(peerId), memberKey)) {
      throw new RpcError(
        'forged',
        `${peerId} answered hello with a key ${short(memberKey)} whose signature over its peer id does not verify`
      )
    }
    const other = this.byKey.get(toHex(memberKey))
    if (other !== undefined && other.peerId !== peerId)
      throw new RpcError('forged', `${peerId} claims member key ${short(memberKey)}, already bound to ${other.name}`)
    if (m !== undefined) this.bind(m, memberKey)
    return memberKey
  }

  /** Asks every member without a known key until all answered or the deadline; returns the members still unknown. */
  async helloAll(deadlineMs: number): Promise<Member[]> {
    for (;;) {
      const unknown = this.list().filter((m) => m.key === null)
      await Promise.all(
        unknown.map(async (m) => {
          try {
            await this.hello(m.peerId, Math.max(1, Math.min(HELLO_TIMEOUT_MS, deadlineMs - Date.now())))
          } catch (err) {
            this.options.logger.debug({ member: m.name, err: (err as Error).message }, 'hello not answered')
          }
        })
      )
      const still = this.list().filter((m) => m.key === null)
      if (still.length === 0 || Date.now() >= deadlineMs) return still
      await sleep(Math.min(HELLO_RETRY_MS, Math.max(0, deadlineMs - Date.now())))
    }
  }

  byPeer(peerId: string): Member | undefined {
    return this.byPeerId.get(peerId)
  }

  byMemberKey(key: Uint8Array): Member | undefined {
    return this.byKey.get(toHex(key))
  }

  /** A member's name for messages: its config name, else the key's short hex. */
  nameOf(key: Uint8Array): string {
    return this.byKey.get(toHex(key))?.name ?? short(key)
  }

  /** Resolves a member given by name, peer id or 64-hex member key; throws an Error listing the names. */
  resolve(text: string): Member & { key: Uint8Array } {
    const t = text.trim()
    let m = [...this.byPeerId.values()].find((x) => x.name === t || x.peerId === t)
    if (m === undefined && /^[0-9a-fA-F]{64}$/.test(t)) m = this.byKey.get(toHex(fromHex(t.toLowerCase())))
    if (m === undefined)
      throw new Error(
        `no member named ${JSON.stringify(t)} (members: ${this.list()
          .map((x) => x.name)
          .join(', ')})`
      )
    if (m.key === null) throw new Error(`the member key of ${m.name} is not known yet (it has not answered hello)`)
    return m as Member & { key: Uint8Array }
  }

  private bind(m: Member, key: Uint8Array): void {
    m.key = new Uint8Array(key)
    this.byKey.set(toHex(key), m)
  }
}
