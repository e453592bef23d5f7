import { spawn } from 'node:child_process'
import { Command, Option } from 'commander'
import pino from 'pino'
import type { Logger } from '../host/log.js'
import { UserError } from '../host/errors.js'
import { clientFor, datadirOption, output, parsePort } from '../commands/util.js'
import { clusterSite } from './cluster-page.js'
import { serveSites } from './site.js'

/**
 * `poolboard dashboard --datadir D`: asks the node for a one-time link to its own page, prints it
 * and opens it. `poolboard dashboard --dir CLUSTER`: serves the page of a whole local cluster from
 * this process (until Ctrl-C) and prints and opens its link. docs/dashboard.md.
 */
export function dashboardCommand(): Command {
  return new Command('dashboard')
    .description(
      'open the web dashboard: of the node on --datadir (served by the node), or of a local cluster with --dir (served by this command until Ctrl-C)'
    )
    .addOption(datadirOption())
    .option('--dir <dir>', "a local cluster's directory: one page for every node")
    .addOption(
      new Option('--port <port>', 'with --dir: the loopback port to serve on (default: a free one)').argParser(
        parsePort
      )
    )
    .option('--no-open', 'only print the link, do not open a browser')
    .option('--json', 'print the link as JSON')
    .action(async (opts: { datadir?: string; dir?: string; port?: number; open: boolean; json?: boolean }) => {
      const json = opts.json === true
      if (opts.dir !== undefined && opts.datadir !== undefined)
        throw new UserError("give --datadir (a node's page) or --dir (a cluster's page), not both")
      if (opts.port !== undefined && opts.dir === undefined)
        throw new UserError("--port is for --dir: a node serves its page on its admin API's port")
      if (opts.dir === undefined) {
        const { url } = await clientFor(opts).post<{ url: string }>('/v1/dashboard/link', {})
        output(
          json,
          { url },
          () => `${url}\n(a one-time link: it opens one browser session; run poolboard dashboard again for another)`
        )
        if (opts.open) openBrowser(url)
        return
      }
      const logger: Logger = pino({ level: 'warn' }, pino.destination(2))
      const site = clusterSite(opts.dir, logger)
      const server = await serveSites([site], opts.port ?? 0)
      const url = site.link(`http://127.0.0.1:${server.port}`)
      output(
        json,
        { url, port: server.port },
        () => `cluster dashboard of ${opts.dir}: ${url}\n(a one-time link; Ctrl-C to stop serving)`
      )
      if (opts.open) openBrowser(url)
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          void server.close().then(resolve)
        }
        process.once('SIGINT', stop)
        process.once('SIGTERM', stop)
      })
    })
}

/** Opens `url` in the desktop's browser if there is one; silent if not (the link is printed). */
export function openBrowser(url: string): void {
  const opener = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open'
  try {
    const child = spawn(opener, [url], { detached: true, stdio: 'ignore' })
    child.on('error', () => {})
    child.unref()
  } catch {
    /* no opener */
  }
}
