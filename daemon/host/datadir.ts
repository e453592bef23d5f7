import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js'
import { CONFIG_FILE, parseConfig, renderConfig, type NodeConfig } from './config.js'
import { EXIT, UserError, errorMessage } from './errors.js'
import { describeFsError, requireReadableDir } from './fs-errors.js'
import { openDatabase } from '../../storage/database.js'
import { fromHex, toHex } from '../../protocol/bytes.js'

/** Everything a node owns lives in its data directory. */
export class DataDir {
  readonly path: string

  constructor(path: string) {
    this.path = resolve(path)
  }

  get configFile(): string {
    return join(this.path, CONFIG_FILE)
  }
  get nodeKeyFile(): string {
    return join(this.path, 'node.key')
  }
  get memberKeyFile(): string {
    return join(this.path, 'member.key')
  }
  get databasePath(): string {
    return join(this.path, 'db')
  }
  get logFile(): string {
    return join(this.path, 'logs', 'poolboard.log')
  }
  get cookieFile(): string {
    return join(this.path, '.cookie')
  }
  get pidFile(): string {
    return join(this.path, 'poolboard.pid')
  }

  isInitialized(): boolean {
    return existsSync(this.configFile)
  }

  /** Reads and validates the config file; a missing directory or file is a clear error. */
  readConfig(): NodeConfig {
    requireReadableDir(this.path)
    if (!this.isInitialized()) {
      const cluster = resolve(process.env.POOLBOARD_CLUSTER_DIR ?? DEFAULT_CLUSTER_DIR)
      const hint =
        existsSync(join(cluster, 'cluster.json')) && !existsSync(this.path)
          ? `; ${cluster} holds a local cluster: name its node with --node N (or --datadir ${join(cluster, 'node1')})`
          : `; create one with: poolboard init --datadir ${this.path}`
      throw new UserError(
        `${this.path} is not a poolboard data directory (no ${CONFIG_FILE})${hint}`,
        EXIT.usage,
        'no-datadir'
      )
    }
    let text: string
    try {
      text = readFileSync(this.configFile, 'utf8')
    } catch (err) {
      throw new UserError(`cannot read ${this.configFile}: ${describeFsError(err)}`)
    }
    return parseConfig(text, this.configFile)
  }

  writeConfig(config: NodeConfig): void {
    writeFileSync(this.configFile, renderConfig(config), { mode: 0o644 })
  }

  async readKeys(): Promise<NodeKeys> {
    let libp2pKey: PrivateKey
    try {
      libp2pKey = privateKeyFromProtobuf(readSecret(this.nodeKeyFile))
    } catch (err) {
      if (err instanceof UserError) throw err
      throw new UserError(
        `${this.nodeKeyFile} is not a libp2p private key (${errorMessage(err)}); restore it from a backup: it is this member's peer id`
      )
    }
    const memberSecret = readMemberSecret(this.memberKeyFile)
    return keysFrom(libp2pKey, memberSecret)
  }

  /** Files holding secrets that are readable by others than the owner. */
  looseSecrets(): string[] {
    return [this.nodeKeyFile, this.memberKeyFile].filter((f) => existsSync(f) && (statSync(f).mode & 0o077) !== 0)
  }

  /** Writes the admin API cookie (bitcoind style: `__cookie__:<hex>`) and returns the password. */
  writeCookie(): string {
    const password = randomBytes(32).toString('hex')
    writeFileSync(this.cookieFile, `${COOKIE_USER}:${password}`, { mode: 0o600 })
    chmodSync(this.cookieFile, 0o600) // the mode option does not apply when the file already exists
    return password
  }

  readCookie(): string {
    if (!existsSync(this.cookieFile)) {
      const cluster = clusterNodeOf(this.path)
      throw new UserError(
        `no node is running on ${this.path} (no .cookie); start it with: ` +
          (cluster === null
            ? `poolboard start --datadir ${this.path}`
            : `poolboard cluster start ${cluster.index}${cluster.dirFlag}`),
        EXIT.unreachable,
        'not-running'
      )
    }
    return readFileSync(this.cookieFile, 'utf8').trim()
  }

  removeCookie(): void {
    rmSync(this.cookieFile, { force: true })
  }

  writePid(): void {
    writeFileSync(this.pidFile, `${process.pid}\n`)
  }

  readPid(): number | undefined {
    if (!existsSync(this.pidFile)) return undefined
    const pid = Number(readFileSync(this.pidFile, 'utf8').trim())
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined
  }

  removePid(): void {
    rmSync(this.pidFile, { force: true })
  }
}

export const COOKIE_USER = '__cookie__'
/** Where `poolboard cluster` keeps a local cluster unless told otherwise (--dir, $POOLBOARD_CLUSTER_DIR). */
export const DEFAULT_CLUSTER_DIR = '.poolboard-cluster'

export interface NodeKeys {
  /** libp2p transport identity. */
  libp2pKey: PrivateKey
  peerId: string
  /** BIP340 secret key that signs pool objects. */
  memberSecret: Uint8Array
  /** x-only public key, 32 bytes. */
  memberKey: Uint8Array
}

/** The default data directory: $POOLBOARD_DATADIR, else ~/.poolboard. */
export function defaultDataDir(): string {
  return process.env.POOLBOARD_DATADIR ?? join(homedir(), '.poolboard')
}

/**
 * Creates a data directory: config, both keys (mode 0600) and the LevelDB database.
 * Refuses a directory that exists and is not empty, so nothing is ever overwritten.
 */
export async function initDataDir(dir: DataDir, config: NodeConfig): Promise<NodeKeys> {
  if (existsSync(dir.path)) {
    if (!statSync(dir.path).isDirectory()) throw new UserError(`${dir.path} exists and is not a directory`)
    if (readdirSync(dir.path).length > 0) {
      throw new UserError(
        dir.isInitialized()
          ? `${dir.path} is already a poolboard data directory; refusing to overwrite it`
          : `${dir.path} exists and is not empty; refusing to write into it`
      )
    }
  }
  mkdirSync(dir.path, { recursive: true, mode: 0o700 })
  mkdirSync(join(dir.path, 'logs'), { mode: 0o700 })

  const libp2pKey = await generateKeyPair('Ed25519')
  const memberSecret = schnorr.utils.randomSecretKey()
  writeSecret(dir.nodeKeyFile, privateKeyToProtobuf(libp2pKey))
  writeSecret(dir.memberKeyFile, new TextEncoder().encode(toHex(memberSecret) + '\n'))
  dir.writeConfig(config)
  const db = await openDatabase(dir.databasePath, { create: true })
  await db.close()
  return keysFrom(libp2pKey, memberSecret)
}

function keysFrom(libp2pKey: PrivateKey, memberSecret: Uint8Array): NodeKeys {
  return {
    libp2pKey,
    peerId: peerIdFromPrivateKey(libp2pKey).toString(),
    memberSecret,
    memberKey: schnorr.getPublicKey(memberSecret)
  }
}

function writeSecret(file: string, bytes: Uint8Array): void {
  writeFileSync(file, bytes, { mode: 0o600, flag: 'wx' })
}

function readSecret(file: string): Uint8Array {
  if (!existsSync(file)) throw new UserError(`missing key file ${file}`)
  try {
    return new Uint8Array(readFileSync(file))
  } catch (err) {
    throw new UserError(`cannot read the key file ${file}: ${describeFsError(err)}`)
  }
}

/**
 * The node of a local cluster (`poolboard cluster ...`) that `path` is, if it is one: the
 * directory next to a cluster.json, named nodeN. Errors then suggest the cluster's commands.
 */
export function clusterNodeOf(path: string): { index: number; clusterDir: string; dirFlag: string } | null {
  const m = /^node(\d+)$/.exec(basename(path))
  const clusterDir = dirname(path)
  if (m === null || !existsSync(join(clusterDir, 'cluster.json'))) return null
  const isDefault = clusterDir === resolve(process.env.POOLBOARD_CLUSTER_DIR ?? DEFAULT_CLUSTER_DIR)
  return { index: Number(m[1]), clusterDir, dirFlag: isDefault ? '' : ` --dir ${clusterDir}` }
}

function readMemberSecret(file: string): Uint8Array {
  const hex = new TextDecoder().decode(readSecret(file)).trim()
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new UserError(`${file}: expected 64 hex characters (a BIP340 secret key)`)
  const secret = fromHex(hex)
  if (!secp256k1.utils.isValidSecretKey(secret)) throw new UserError(`${file}: not a valid secp256k1 secret key`)
  return secret
}
