import { concatBytes, equalBytes } from '../../protocol/bytes.js'
import { Writer, decodeAll } from '../../protocol/codec.js'
import { encodePoolRef, type Outpoint, type PoolRef } from '../../protocol/common.js'
import { MAX_OBJECT_BYTES } from '../../protocol/limits.js'
import {
  encodeUnsignedStatement,
  readUnsignedStatement,
  statementId,
  type PartitionStatement
} from '../../protocol/statement.js'
import { readPayment, writePayment, type Payment } from '../../protocol/requests.js'
import { PREFIX, type Database } from '../../storage/database.js'

/**
 * What this node's member has signed, on disk, so that it never signs twice even across restarts:
 *
 * - at most one state N+1 per state N of a (sub-)pool (two final N+1 states must never exist);
 * - at most one partition statement spending each of its own Withdraw outputs (an honest member
 *   never signs two conflicting statements, even if the first was never completed).
 *
 * Signing the very same state or statement again is allowed: that is how a failed round is retried.
 * Each promise is written with a synced put before the signature leaves the node.
 *
 *     poolSigned | 0x01 | pool ref | state number N u32 BE  -> v2 | state hash of N+1 | round id | at ms | heightT | payment | deadline ms
 *                                                             (v1: the same without the deadline, read as at ms + MAX_ROUND_DEADLINE_MS)
 *     poolSigned | 0x02 | txid | vout u32 BE                -> v1 | statement id | at ms | unsigned statement
 */

const RECORD_VERSION = 1
const STATE_RECORD_VERSION = 2
/** The longest round (the service's MAX_ROUND_TIMEOUT_MS): a v1 state record's round ended by then. */
const MAX_ROUND_DEADLINE_MS = 120_000
const STATE_TAG = 0x01
const STATEMENT_TAG = 0x02
/** Signed statements the lab lists at most. */
const MAX_LISTED_STATEMENTS = 1_000

/** The state N+1 signed: its hash, and the payment and height that made it, so its proposer can retry it. */
export interface SignedStateRecord {
  stateHash: Uint8Array
  roundId: Uint8Array
  atMs: number
  heightT: number
  payment: Payment
  deadlineMs: number
}
export interface SignedStatementRecord {
  statementId: Uint8Array
  atMs: number
  statement: PartitionStatement
}

/** A promise kept (recorded now, or made before for the same thing) or the earlier, different one. */
export type Remembered<T> = { ok: true } | { ok: false; earlier: T }

export class SignedRecords {
  /** One decision at a time: check-then-write must not interleave. */
  private lock: Promise<unknown> = Promise.resolve()

  constructor(private readonly db: Database) {}

  /**
   * Records that this member signs the state with `signed.stateHash` as state N+1 of `pool` after
   * state `fromNumber`, unless it already signed a different one (returned). With `expiredBeforeMs`
   * (a merge of a frozen pool) an earlier promise whose round ended before then is replaced: no
   * honest member signs a request after its deadline, and none signs a state of a frozen pool, so
   * that earlier state can never be completed.
   */
  async promiseState(
    pool: PoolRef,
    fromNumber: number,
    signed: Omit<SignedStateRecord, 'atMs'>,
    opts: { expiredBeforeMs?: number } = {}
  ): Promise<Remembered<SignedStateRecord>> {
    return await this.serialized(async () => {
      const key = stateKey(pool, fromNumber)
      const bytes = await this.db.get(key)
      if (bytes !== undefined) {
        const earlier = decodeStateRecord(bytes)
        if (equalBytes(earlier.stateHash, signed.stateHash)) return { ok: true }
        if (opts.expiredBeforeMs === undefined || earlier.deadlineMs >= opts.expiredBeforeMs)
          return { ok: false, earlier }
      }
      const w = new Writer(160)
        .u8(STATE_RECORD_VERSION)
        .bytes32(signed.stateHash, 'stateHash')
        .bytes32(signed.roundId, 'roundId')
        .u53(Date.now(), 'atMs')
      w.u32(signed.heightT, 'heightT')
      writePayment(w, signed.payment)
      w.u53(signed.deadlineMs, 'deadlineMs')
      await this.db.put(key, w.finish(), { sync: true })
      return { ok: true }
    })
  }

  async signedState(pool: PoolRef, fromNumber: number): Promise<SignedStateRecord | undefined> {
    const bytes = await this.db.get(stateKey(pool, fromNumber))
    return bytes === undefined ? undefined : decodeStateRecord(bytes)
  }

  /**
   * Records that this member signs `statement`, which spends its own Withdraw output `mine`, unless
   * it already signed another statement spending that output (returned). With `force` (lab only)
   * it records the new one over the old, as an equivocating member would.
   */
  async promiseStatement(
    mine: Outpoint,
    statement: PartitionStatement,
    force = false
  ): Promise<Remembered<SignedStatementRecord>> {
    return await this.serialized(async () => {
      const key = statementKey(mine)
      const id = statementId(statement)
      const bytes = await this.db.get(key)
      if (bytes !== undefined && !force) {
        const earlier = decodeStatementRecord(bytes)
        if (equalBytes(earlier.statementId, id)) return { ok: true }
        return { ok: false, earlier }
      }
      const unsigned = encodeUnsignedStatement({ ...statement, signatures: [] })
      const w = new Writer(unsigned.length + 64)
        .u8(RECORD_VERSION)
        .bytes32(id, 'statementId')
        .u53(Date.now(), 'atMs')
        .bytes(unsigned, MAX_OBJECT_BYTES, 'statement')
      await this.db.put(key, w.finish(), { sync: true })
      return { ok: true }
    })
  }

  async signedStatement(mine: Outpoint): Promise<SignedStatementRecord | undefined> {
    const bytes = await this.db.get(statementKey(mine))
    return bytes === undefined ? undefined : decodeStatementRecord(bytes)
  }

  /** Statements this member signed, newest first (at most MAX_LISTED_STATEMENTS). */
  async signedStatements(): Promise<SignedStatementRecord[]> {
    const out: SignedStatementRecord[] = []
    const gte = Uint8Array.of(PREFIX.poolSigned, STATEMENT_TAG)
    const lt = Uint8Array.of(PREFIX.poolSigned, STATEMENT_TAG + 1)
    for await (const value of this.db.values({ gte, lt, limit: MAX_LISTED_STATEMENTS }))
      out.push(decodeStatementRecord(value))
    return out.sort((a, b) => b.atMs - a.atMs)
  }

  private async serialized<T>(work: () => Promise<T>): Promise<T> {
    const run = this.lock.then(work, work)
    this.lock = run.catch(() => undefined)
    return await run
  }
}

function stateKey(pool: PoolRef, fromNumber: number): Uint8Array {
  return concatBytes(
    Uint8Array.of(PREFIX.poolSigned, STATE_TAG),
    encodePoolRef(pool),
    new Writer(4).u32be(fromNumber, 'stateNumber').finish()
  )
}

function statementKey(o: Outpoint): Uint8Array {
  return concatBytes(
    Uint8Array.of(PREFIX.poolSigned, STATEMENT_TAG),
    new Writer(36).bytes32(o.txid, 'txid').u32be(o.vout, 'vout').finish()
  )
}

function decodeStateRecord(bytes: Uint8Array): SignedStateRecord {
  return decodeAll(bytes, 'signed state record', (r) => {
    const version = r.version([RECORD_VERSION, STATE_RECORD_VERSION])
    const record = {
      stateHash: r.bytes32('stateHash'),
      roundId: r.bytes32('roundId'),
      atMs: r.u53('atMs'),
      heightT: r.u32('heightT'),
      payment: readPayment(r, 'payment')
    }
    return {
      ...record,
      deadlineMs: version === RECORD_VERSION ? record.atMs + MAX_ROUND_DEADLINE_MS : r.u53('deadlineMs')
    }
  })
}

function decodeStatementRecord(bytes: Uint8Array): SignedStatementRecord {
  return decodeAll(bytes, 'signed statement record', (r) => {
    r.version([RECORD_VERSION])
    const id = r.bytes32('statementId')
    const atMs = r.u53('atMs')
    const statement = decodeAll(r.bytes('statement', MAX_OBJECT_BYTES), 'statement', readUnsignedStatement)
    return { statementId: id, atMs, statement }
  })
}
