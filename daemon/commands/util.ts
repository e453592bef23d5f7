import { type Command, InvalidArgumentError, Option } from 'commander'
import { jsonReplacer } from '../api/server.js'
import { AdminClient } from '../api/client.js'
import { DataDir, defaultDataDir } from '../host/datadir.js'

// daemon/commands/: the CLI's commands (board, pool, chain, cluster, defense), each a client of a
// running node's admin API; daemon/cli.ts puts them together.

/** Prints `value` as JSON (with bigints as numbers) or runs `human` to print it for people. */
export function output (json: boolean, value: unknown, human: () => string): void {
  process.stdout.write((json ? JSON.stringify(value, jsonReplacer, 2) : human()) + '\n')
}

export function parseIndex (text: string): number {
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`expected a node number (1, 2, ...), got "${text}"`)
  return n
}

export function parsePositive (text: string): number {
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive whole number, got "${text}"`)
  return n
}

/** An amount of sats, kept as the decimal text the API takes. */
export function parseSats (text: string): string {
  if (!/^\d{1,16}$/.test(text)) throw new InvalidArgumentError(`expected a whole number of sats, got "${text}"`)
  return text
}

export const datadirOption = (): Option => new Option('--datadir <dir>', 'data directory (default: $POOLBOARD_DATADIR or ~/.poolboard)')

/** A subcommand of `parent` that talks to the node on --datadir and prints JSON with --json, as every client command does. */
export function clientCommand (parent: Command, name: string, description: string): Command {
  return parent.command(name).description(description).addOption(datadirOption()).option('--json', 'print JSON')
}

export function dataDir (options: { datadir?: string }): DataDir {
  return new DataDir(options.datadir ?? defaultDataDir())
}

/** A client of the admin API of the node on `--datadir`. Its errors (ApiCallError) are UserErrors: main() prints them. */
export function clientFor (options: { datadir?: string }): AdminClient {
  return AdminClient.fromDataDir(dataDir(options))
}

export function parsePort (text: string): number {
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`expected a port from 0 to 65535, got "${text}"`)
  return n
}
