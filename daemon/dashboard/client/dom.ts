/** A tiny element builder: h('td', { class: 'num' }, '12'). Text is always set as text, never as HTML. */
export type Child = Node | string | number | null | undefined | false | Child[]

export function h(
  tag: string,
  attrs: Record<string, string | number | boolean | undefined | ((e: Event) => void)> = {},
  ...children: Child[]
): HTMLElement {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v)
    else el.setAttribute(k, v === true ? '' : String(v))
  }
  append(el, children)
  return el
}

function append(el: HTMLElement, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue
    if (Array.isArray(c)) append(el, c)
    else el.append(typeof c === 'number' ? String(c) : c)
  }
}

export function sats(n: number | string | null | undefined): string {
  if (n === null || n === undefined) return '-'
  return `${Number(n).toLocaleString('en-US')} sats`
}

export function short(hex: string | null | undefined, n = 12): string {
  return hex === null || hex === undefined ? '-' : hex.slice(0, n)
}

export function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 23)
}

export function table(headers: string[], rows: Child[][], attrs: Record<string, string> = {}): HTMLElement {
  return h(
    'table',
    attrs,
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        headers.map((x) => h('th', {}, x))
      )
    ),
    h(
      'tbody',
      {},
      rows.map((r) =>
        h(
          'tr',
          {},
          r.map((c) => h('td', {}, c))
        )
      )
    )
  )
}
