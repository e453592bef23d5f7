import { join } from 'node:path'
import { openDatabase, type Database } from '../../storage/database.js'
import { tempDir } from './process.js'

export interface TempDatabase {
  /** The open database of the running test. */
  db: Database
  /** Closes the database and opens it again from disk, as a restarted node would. */
  reopen: () => Promise<Database>
}

/**
 * A fresh LevelDB in a temporary directory for each test of the enclosing `describe`, closed and
 * deleted after it. Call it in the `describe` body.
 */
export function tempDatabaseEachTest(): TempDatabase {
  let temp: ReturnType<typeof tempDir> | undefined
  const path = (): string => join(temp!.path, 'db')
  const handle: TempDatabase = {
    db: undefined as unknown as Database,
    async reopen() {
      await handle.db.close()
      handle.db = await openDatabase(path(), { create: false })
      return handle.db
    }
  }
  beforeEach(async () => {
    temp = tempDir()
    handle.db = await openDatabase(path(), { create: true })
  })
  afterEach(async () => {
    try {
      await handle.db?.close() // unset if beforeEach failed to open it
    } finally {
      temp?.cleanup()
    }
  })
  return handle
}
