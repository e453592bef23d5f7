/**
 * An error meant for the person at the terminal: its message is one line that says what was wrong
 * and, where it helps, what to do. The CLI prints it without a stack trace and exits non-zero.
 */
export class UserError extends Error {
  readonly exitCode: number

  constructor (message: string, exitCode = 1) {
    super(message)
    this.name = 'UserError'
    this.exitCode = exitCode
  }
}

/** The message of anything thrown, on one line. */
export function errorMessage (err: unknown): string {
  const text = err instanceof Error ? err.message : String(err)
  return text.replace(/\s*\n\s*/g, ' ')
}
