/**
 * Exit codes of the `poolboard` command (docs/operations.md): scripts tell a mistake in the command
 * from a refusal, from a node or member that cannot be reached, from a wait that ran out.
 */
export const EXIT = {
  ok: 0,
  /** Anything else: an internal error, a failed step. */
  error: 1,
  /** The command line or the configuration is wrong: fix it and run again. */
  usage: 2,
  /** The node, the board or a member refused (a pool rule, a conflict, a refusal to sign). */
  refused: 3,
  /** The node, a member or the board leader cannot be reached. */
  unreachable: 4,
  /** A wait ran out (a round's deadline, a board commit, a node that did not answer in time). */
  timeout: 5
} as const

export type ExitCode = (typeof EXIT)[keyof typeof EXIT]

/** The `error.code` of a JSON error, by exit code, where the error itself names none. */
const CODE_OF_EXIT: Record<number, string> = { 1: 'error', 2: 'usage', 3: 'refused', 4: 'unreachable', 5: 'timeout' }

/**
 * An error meant for the person at the terminal: its message is one line that says what was wrong
 * and, where it helps, what to do. The CLI prints it without a stack trace and exits non-zero.
 */
export class UserError extends Error {
  readonly exitCode: number
  /** A stable word for scripts (`--json` errors); defaults to the exit code's meaning. */
  readonly code: string

  constructor(message: string, exitCode: number = EXIT.error, code?: string) {
    super(message)
    this.name = 'UserError'
    this.exitCode = exitCode
    this.code = code ?? CODE_OF_EXIT[exitCode] ?? 'error'
  }
}

/** The message of anything thrown, on one line. */
export function errorMessage(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err)
  return text.replace(/\s*\n\s*/g, ' ')
}
