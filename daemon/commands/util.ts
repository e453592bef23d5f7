import { type Command, InvalidArgumentError, Option } from 'commander'
import { jsonReplacer } from '../api/server.js'
import { AdminClient } from '../api/client.js'
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { DataDir, DEFAULT_CLUSTER_DIR, defaultDataDir } from '../host/datadir.js'
import { EXIT, UserError } from '../host/errors.js'

// daemon/commands/: the CLI's commands (board, pool, chain, cluster, defense), each a client of a
// running node's admin API; daemon/cli.ts puts them together.

/** Prints `value` as JSON (with bigints as numbers) or runs `human` to print it for people. */
export function output(json: boolean, value: unknown, human: () => string): void {
  process.stdout.write((json ? JSON.stringify(value, jsonReplacer, 2) : human()) + '\n')
}

export function parseIndex(text: string): number {
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError(`expected a node number (1, 2, ...), got "${text}"`)
  return n
}

export function parsePositive(text: string): number {
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError(`expected a positive whole number, got "${text}"`)
  return n
}

/** An amount of sats, kept as the decimal text the API takes. */
export function parseSats(text: string): string {
  if (!/^\d{1,16}$/.test(text)) throw new InvalidArgumentError(`expected a whole number of sats, got "${text}"`)
  return text
}

/** A payment's amount: at least 1 sat. */
export function parsePositiveSats(text: string): string {
  if (!/^\d{1,16}$/.test(text) || BigInt(text) < 1n)
    throw new InvalidArgumentError(`expected a positive whole number of sats, got "${text}"`)
  return text
}

export const datadirOption = (): Option =>
  new Option('--datadir <dir>', 'data directory (default: $POOLBOARD_DATADIR or ~/.poolboard)')

/** `--node N`: node N of the local cluster (in $POOLBOARD_CLUSTER_DIR or .poolboard-cluster), instead of --datadir. */
export const nodeOption = (): Option =>
  new Option('--node <N>', 'node N of the local cluster (.poolboard-cluster/nodeN), instead of --datadir')
    .argParser(parseIndex)
    .conflicts('datadir')

/** A command that works on one data directory: --datadir DIR or --node N. */
export function withDataDir(cmd: Command): Command {
  return cmd.addOption(datadirOption()).addOption(nodeOption())
}

/** A subcommand of `parent` that talks to the node on --datadir (or --node) and prints JSON with --json, as every client command does. */
export function clientCommand(parent: Command, name: string, description: string): Command {
  return withDataDir(parent.command(name).description(description)).option('--json', 'print JSON')
}

export function dataDir(options: { datadir?: string; node?: number }): DataDir {
  if (options.node !== undefined) {
    const dir = join(resolve(process.env.POOLBOARD_CLUSTER_DIR ?? DEFAULT_CLUSTER_DIR), `node${options.node}`)
    if (!existsSync(dir))
      throw new UserError(
        `--node ${options.node}: no ${dir} (a local cluster's nodes are made by poolboard cluster up)`,
        EXIT.usage,
        'no-node'
      )
    return new DataDir(dir)
  }
  return new DataDir(options.datadir ?? defaultDataDir())
}

/** A client of the admin API of the node on `--datadir`. Its errors (ApiCallError) are UserErrors: main() prints them. */
export function clientFor(options: { datadir?: string; node?: number }): AdminClient {
  return AdminClient.fromDataDir(dataDir(options))
}

export function parsePort(text: string): number {
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError(`expected a port from 0 to 65535, got "${text}"`)
  return n
}
