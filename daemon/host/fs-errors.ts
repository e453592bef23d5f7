import { accessSync, constants, statSync } from 'node:fs'
import { EXIT, UserError } from './errors.js'

/** A file system error in words, for one-line messages that name the file. */
export function describeFsError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied'
  if (code === 'ENOENT') return 'no such file or directory'
  if (code === 'ENOTDIR') return 'a path component is not a directory'
  if (code === 'EROFS') return 'read-only file system'
  return (err as Error).message
}

/** A data directory that exists but cannot be read is not "not a data directory". */
export function requireReadableDir(path: string): void {
  try {
    if (!statSync(path).isDirectory()) throw new UserError(`${path} is not a directory`, EXIT.usage, 'not-a-directory')
    accessSync(path, constants.R_OK | constants.X_OK)
  } catch (err) {
    if (err instanceof UserError) throw err
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    throw new UserError(
      `cannot read the data directory ${path}: ${describeFsError(err)}`,
      EXIT.error,
      'datadir-unreadable'
    )
  }
}
