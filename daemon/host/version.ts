import { readFileSync } from 'node:fs'

function readVersion(): string {
  // dist/daemon/host/version.js sits three levels below package.json, daemon/host/version.ts two.
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string }
      if (pkg.name === 'poolboard' && typeof pkg.version === 'string') return pkg.version
    } catch {
      /* try the next candidate */
    }
  }
  return '0.0.0'
}

export const VERSION = readVersion()
