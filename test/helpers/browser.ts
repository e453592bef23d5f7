import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { tempDir } from './process.js'

/** Debian's chromium (`.ci/run` installs it): the browser the dashboard tests drive. */
export const CHROMIUM = '/usr/bin/chromium'

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync'
]

/**
 * A fresh Chromium profile (its own user-data-dir, removed by `close()`), headless, no network
 * access beyond what the page asks for. Each call is a separate browser: no shared cookies.
 */
export class TestBrowser {
  readonly errors: string[] = []

  private constructor(
    readonly context: BrowserContext,
    private readonly temp: { path: string; cleanup: () => void }
  ) {}

  static async launch(viewport = { width: 1200, height: 860 }): Promise<TestBrowser> {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`)
    const temp = tempDir('poolboard-chromium-')
    const context = await chromium.launchPersistentContext(join(temp.path, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      viewport
    })
    return new TestBrowser(context, temp)
  }

  /** A new tab that fails the test on any script error. */
  async page(): Promise<Page> {
    const page = await this.context.newPage()
    page.on('pageerror', (err) => {
      this.errors.push(err.message)
    })
    return page
  }

  async close(): Promise<void> {
    await this.context.close().catch(() => undefined)
    this.temp.cleanup()
  }
}

/** Saves a screenshot into $POOLBOARD_SCREENSHOTS (the docs' pictures) when it is set. */
export async function screenshot(page: Page, name: string): Promise<void> {
  const dir = process.env.POOLBOARD_SCREENSHOTS
  if (dir === undefined || dir === '') return
  await page.screenshot({ path: join(dir, name), fullPage: true })
}
