import { decodeBoardEntry } from '../../../board/entries.js'
import { toHex } from '../../../protocol/bytes.js'
import { statementId } from '../../../protocol/statement.js'
import { DatabaseLockedError, openDatabase, type Database } from '../../../storage/database.js'
import { RaftStore } from '../../../storage/raft-store.js'
import { rewriteStoredEntry } from './rewrite.js'
import { DataDir } from '../../host/datadir.js'
import { UserError } from '../../host/errors.js'

/**
 * The coalition drop (lab mode only): a board host hides a committed partition statement from
 * its copy of the board. On a STOPPED node's data directory, the statement's entry becomes a
 * leader no-op with the same index and term (its log stays as up to date as every honest one,
 * so honest members keep granting it votes), the hash chain after it is re-computed, the pool
 * records are rebuilt from the doctored log, and the node's config gets `lab-coalition=1`: when it
 * starts again it runs without hash checks, re-bases honest leaders' appends on its own chain,
 * raises and sends no alarm, sends no evidence, and answers every defense's question from the
 * doctored view (daemon/lab/node/coalition.ts).
 */

export interface DropResult {
  datadir: string
  statementId: string
  index: number
  term: number
  rehashed: number
  applied: number
}

const MIN_ID_PREFIX_CHARS = 8
const MAX_SCANNED_ENTRIES = 1_000_000

/** Drops the statement whose id starts with `idPrefix` from the stopped node at `datadir`. */
export async function dropStatement(datadir: string, idPrefix: string): Promise<DropResult> {
  const dir = new DataDir(datadir)
  const config = dir.readConfig()
  if (!config.lab)
    throw new UserError(
      `${dir.path} is not a lab node (lab=0 in ${dir.configFile}): dropping a statement is an adversarial lab behaviour`
    )
  const prefix = idPrefix.trim().toLowerCase()
  if (!/^[0-9a-f]+$/.test(prefix) || prefix.length < MIN_ID_PREFIX_CHARS || prefix.length > 64) {
    throw new UserError(
      `--statement: expected a statement id (${MIN_ID_PREFIX_CHARS} to 64 hex digits), got "${idPrefix}"`
    )
  }
  let db: Database
  try {
    db = await openDatabase(dir.databasePath, { create: false })
  } catch (err) {
    if (err instanceof DatabaseLockedError)
      throw new UserError(`the node on ${dir.path} is running: stop it first (the rewrite is offline)`)
    throw err
  }
  try {
    const store = await RaftStore.open(db)
    const last = Math.min(store.lastStoredIndex, MAX_SCANNED_ENTRIES)
    const matches: Array<{ index: number; id: string }> = []
    for (const e of await store.readEntries(1, last)) {
      const decoded = decodeBoardEntry(e)
      if (decoded.kind !== 'statement') continue
      const id = toHex(statementId(decoded.statement))
      if (id.startsWith(prefix)) matches.push({ index: e.index, id })
    }
    const distinct = [...new Set(matches.map((m) => m.id))]
    if (distinct.length === 0)
      throw new UserError(`no statement ${prefix} in the board log of ${dir.path} (entries 1 to ${last})`)
    if (distinct.length > 1)
      throw new UserError(`statement ${prefix} is ambiguous: ${distinct.join(', ')}; give more digits`)
    // Every copy goes: once the first is gone, a later copy of the same statement would be accepted.
    const results = []
    for (const m of matches) results.push(await rewriteStoredEntry(db, m.index, new Uint8Array(0)))
    dir.writeConfig({ ...config, labCoalition: true })
    const first = results[0]
    return {
      datadir: dir.path,
      statementId: distinct[0],
      index: first.index,
      term: first.term,
      rehashed: first.rehashed,
      applied: results[results.length - 1].applied
    }
  } finally {
    await db.close()
  }
}
