// What this node promised other members, kept outside LevelDB.
//
// A node that acknowledged entries or cast a vote and then lost them (a LevelDB write-ahead log cut
// short, flipped bytes, a deleted log file, an older copy of db/ put back) must not vote or
// acknowledge again as if nothing happened: it may have counted toward a commit, or vote twice in a
// term. LevelDB recovers what it can without saying what it dropped, so the node keeps a small
// record of its promises in its own file, written with every synced Raft batch, and compares the
// store with it at start (docs/operations.md, "Lost durable state"). The record is synced only when
// the term or vote changes: what it guards against (a write-ahead log cut short, flipped bytes, a
// deleted log, an older db/ put back) leaves the operating system's copy of the file intact, and a
// power loss that drops an unsynced record leaves an older one, which detects less, never falsely.
// So a Raft batch costs one fsync, not two (bench/board.ts, the promise record).
//
// Layout: two fixed 512-byte slots written in turn (a torn write spoils one slot, never both):
//   magic "PBPR" || version u8 (1) || seq u64 || term u64 || lastIndex u64 || lastHash (32 bytes)
//   || vote length u16 || vote (UTF-8) || zero padding || crc32 of the bytes before it (u32, at 508)

import { open, type FileHandle } from 'node:fs/promises'
import { existsSync, readFileSync } from 'node:fs'
import { crc32 } from 'node:zlib'

export interface BoardPromise {
  /** The highest term this node has been in, and its vote in it. */
  readonly term: number
  readonly vote: string | null
  /** The last entry this node holds durably (what it may have acknowledged), and its hash. */
  readonly lastIndex: number
  readonly lastHash: Uint8Array
}

const SLOT_BYTES = 512
const MAGIC = Buffer.from('PBPR')
const VERSION = 1
const CRC_AT = SLOT_BYTES - 4
const MAX_VOTE_BYTES = CRC_AT - 4 - 1 - 8 - 8 - 8 - 32 - 2

export class PromiseFile {
  private seq = 0n
  private last: BoardPromise | null
  private writing: Promise<void> = Promise.resolve()

  private constructor(
    private readonly file: FileHandle,
    loaded: { promise: BoardPromise; seq: bigint } | null
  ) {
    this.last = loaded?.promise ?? null
    this.seq = loaded?.seq ?? 0n
  }

  /** Reads the record (null if there is none yet) and opens the file for writing. */
  static async open(path: string): Promise<{ file: PromiseFile; promise: BoardPromise | null }> {
    const loaded = existsSync(path) ? readPromise(readFileSync(path)) : null
    const file = await open(path, existsSync(path) ? 'r+' : 'w+', 0o600)
    return { file: new PromiseFile(file, loaded), promise: loaded?.promise ?? null }
  }

  /** The latest record written (or read). */
  get current(): BoardPromise | null {
    return this.last
  }

  /**
   * Writes `p` unless it equals the last record, and syncs it (fdatasync) if `sync`; writes are
   * serialised.
   */
  async write(p: BoardPromise, sync = true): Promise<void> {
    const prev = this.last
    if (
      prev !== null &&
      prev.term === p.term &&
      prev.vote === p.vote &&
      prev.lastIndex === p.lastIndex &&
      Buffer.from(prev.lastHash).equals(Buffer.from(p.lastHash))
    ) {
      await this.writing
      return
    }
    this.last = p
    const seq = ++this.seq
    const slot = encodeSlot(p, seq)
    const run = this.writing.then(async () => {
      await this.file.write(slot, 0, SLOT_BYTES, Number(seq % 2n) * SLOT_BYTES)
      if (sync) await this.file.datasync()
    })
    this.writing = run.catch(() => undefined)
    await run
  }

  async close(): Promise<void> {
    await this.writing
    await this.file.close()
  }
}

function encodeSlot(p: BoardPromise, seq: bigint): Buffer {
  const vote = Buffer.from(p.vote ?? '', 'utf8')
  if (vote.length > MAX_VOTE_BYTES)
    throw new RangeError(`vote id of ${vote.length} bytes is too long for the promise record`)
  if (p.lastHash.length !== 32) throw new RangeError('lastHash must be 32 bytes')
  const b = Buffer.alloc(SLOT_BYTES)
  let at = MAGIC.copy(b, 0)
  b[at++] = VERSION
  b.writeBigUInt64BE(seq, at)
  at += 8
  b.writeBigUInt64BE(BigInt(p.term), at)
  at += 8
  b.writeBigUInt64BE(BigInt(p.lastIndex), at)
  at += 8
  at += Buffer.from(p.lastHash).copy(b, at)
  b.writeUInt16BE(p.vote === null ? 0xffff : vote.length, at)
  at += 2
  vote.copy(b, at)
  b.writeUInt32BE(crc32(b.subarray(0, CRC_AT)), CRC_AT)
  return b
}

function decodeSlot(b: Buffer): { promise: BoardPromise; seq: bigint } | null {
  if (b.length < SLOT_BYTES || !b.subarray(0, 4).equals(MAGIC) || b[4] !== VERSION) return null
  if (b.readUInt32BE(CRC_AT) !== crc32(b.subarray(0, CRC_AT))) return null
  let at = 5
  const seq = b.readBigUInt64BE(at)
  at += 8
  const term = Number(b.readBigUInt64BE(at))
  at += 8
  const lastIndex = Number(b.readBigUInt64BE(at))
  at += 8
  const lastHash = new Uint8Array(b.subarray(at, at + 32))
  at += 32
  const voteLength = b.readUInt16BE(at)
  at += 2
  if (!Number.isSafeInteger(term) || !Number.isSafeInteger(lastIndex)) return null
  if (voteLength !== 0xffff && voteLength > MAX_VOTE_BYTES) return null
  const vote = voteLength === 0xffff ? null : b.subarray(at, at + voteLength).toString('utf8')
  return { promise: { term, vote, lastIndex, lastHash }, seq }
}

/** The newer of the two slots that pass their checksum (null if neither does). */
export function readPromise(bytes: Buffer): { promise: BoardPromise; seq: bigint } | null {
  const a = decodeSlot(bytes.subarray(0, SLOT_BYTES))
  const b = decodeSlot(bytes.subarray(SLOT_BYTES, 2 * SLOT_BYTES))
  if (a === null) return b
  if (b === null) return a
  return a.seq > b.seq ? a : b
}
