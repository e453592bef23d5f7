import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
export { isAlive, waitFor } from '../../daemon/host/wait.js'

/** The built CLI: real-process tests run exactly what users run (`npm test` builds first). */
export const CLI = fileURLToPath(new URL('../../dist/daemon/cli.js', import.meta.url))

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

/** Runs `poolboard ARGS` to completion. */
export async function runCli(
  args: string[],
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv; uid?: number; gid?: number; cwd?: string } = {}
): Promise<CliResult> {
  return await new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      {
        timeout: options.timeoutMs ?? 120_000,
        env: { ...process.env, ...options.env },
        maxBuffer: 64 * 1024 * 1024,
        uid: options.uid,
        gid: options.gid,
        cwd: options.cwd
      },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1
        resolve({ code, stdout, stderr })
      }
    )
  })
}

/** Runs `poolboard ARGS` and returns stdout; a non-zero exit fails with the command's stderr. */
export async function cli(args: string[], options: { timeoutMs?: number } = {}): Promise<string> {
  const result = await runCli(args, options)
  if (result.code !== 0) throw new Error(`poolboard ${args.join(' ')} exited ${result.code}: ${result.stderr.trim()}`)
  return result.stdout
}

export async function cliJson<T>(args: string[], options: { timeoutMs?: number } = {}): Promise<T> {
  return JSON.parse(await cli([...args, '--json'], options)) as T
}

/** Starts `poolboard ARGS` in the background (for `start` in the foreground). */
export function spawnCli(args: string[]): ChildProcess {
  return spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
}

/** A fresh temporary directory, removed by `cleanup()`. */
export function tempDir(prefix = 'poolboard-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix))
  return {
    path,
    cleanup: () => {
      rmSync(path, { recursive: true, force: true })
    }
  }
}

/** Kills a child that is still running (SIGKILL) and waits for it: a failed test leaves no process behind. */
export async function killChild(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined) return
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  await exitOf(child)
}

/** Waits for a child to exit and returns its exit code (or signal name). */
export async function exitOf(child: ChildProcess): Promise<number | string> {
  if (child.exitCode !== null) return child.exitCode
  if (child.signalCode !== null) return child.signalCode
  return await new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      resolve(code ?? signal ?? -1)
    })
  )
}
