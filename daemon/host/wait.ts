/** Waiting on conditions and processes, with a deadline: never a fixed sleep standing in for a condition. */

/** Resolves after `ms` (0 or less: at once). */
export async function sleep(ms: number): Promise<void> {
  if (ms <= 0) return
  await new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * Polls `check` until it returns something other than undefined or false; throws naming `what` (and
 * the last error `check` threw, if any) once `timeoutMs` has passed.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
  intervalMs = 100
): Promise<T> {
  const deadlineMs = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      const value = await check()
      if (value !== undefined && value !== false) return value
    } catch (err) {
      lastError = err
    }
    if (Date.now() > deadlineMs) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError === undefined ? '' : `: ${(lastError as Error).message}`}`
      )
    }
    await sleep(intervalMs)
  }
}

/** Whether process `pid` exists (EPERM: it exists but is not ours). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
