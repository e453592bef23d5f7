/**
 * The page's link to its server: server-sent events carry a snapshot on every change and a ping
 * every 2 s. If neither arrives for STALE_MS, or the stream breaks, the page says so at once
 * (the browser keeps reconnecting on its own).
 */

const STALE_MS = 5_000

export interface LiveOptions<T> {
  onSnapshot: (snapshot: T) => void
  onReachable: (reachable: boolean, why: string) => void
}

export function connect<T>(options: LiveOptions<T>): void {
  let lastMs = Date.now()
  let reachable = false
  const set = (ok: boolean, why: string): void => {
    if (ok !== reachable) {
      reachable = ok
      options.onReachable(ok, why)
    }
  }
  const source = new EventSource('events')
  const seen = (): void => {
    lastMs = Date.now()
    set(true, '')
  }
  source.addEventListener('snapshot', (e) => {
    seen()
    options.onSnapshot(JSON.parse((e as MessageEvent<string>).data) as T)
  })
  source.addEventListener('ping', seen)
  source.addEventListener('error', () => {
    set(
      false,
      source.readyState === EventSource.CLOSED
        ? 'the server refused the stream (session gone? run poolboard dashboard again)'
        : 'the connection broke; retrying'
    )
  })
  setInterval(() => {
    if (Date.now() - lastMs > STALE_MS) set(false, `no word for ${Math.round((Date.now() - lastMs) / 1000)} s`)
  }, 500)
  options.onReachable(false, 'connecting')
}

/** POSTs an action with the page's CSRF token. */
export async function act(name: string, body: Record<string, unknown>): Promise<unknown> {
  const token = document.querySelector('meta[name="poolboard-csrf"]')?.getAttribute('content') ?? ''
  const res = await fetch(`action/${name}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-csrf-token': token },
    body: JSON.stringify(body)
  })
  const json = (await res.json()) as { error?: { message: string } }
  if (!res.ok) throw new Error(json.error?.message ?? `HTTP ${res.status}`)
  return json
}
