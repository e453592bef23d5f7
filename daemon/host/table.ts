/** Renders rows as an aligned text table with a header and a rule under it. */
export function renderTable(
  headers: readonly string[],
  rows: ReadonlyArray<readonly string[]>,
  options: { alignRight?: readonly number[] } = {}
): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const right = new Set(options.alignRight ?? [])
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (right.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd()
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}

/** Shows progress on one line of stderr when it is a terminal; plain lines otherwise, at most one per `minIntervalMs`. */
export class Progress {
  private lastText = ''
  private lastPrintMs = 0
  private readonly tty = process.stderr.isTTY === true

  constructor(
    private readonly enabled = true,
    private readonly minIntervalMs = 2_000
  ) {}

  update(text: string): void {
    if (!this.enabled || text === this.lastText) return
    this.lastText = text
    if (this.tty) {
      process.stderr.write(`\r\x1b[K${text}`)
      return
    }
    const nowMs = Date.now()
    if (nowMs - this.lastPrintMs < this.minIntervalMs) return
    this.lastPrintMs = nowMs
    process.stderr.write(text + '\n')
  }

  done(text?: string): void {
    if (!this.enabled) return
    if (this.tty && this.lastText !== '') process.stderr.write('\r\x1b[K')
    if (text !== undefined) process.stderr.write(text + '\n')
    this.lastText = ''
  }
}
