import { networkInterfaces } from 'node:os'
import { formatHostPort, type HostPort, type NodeConfig } from './config.js'

/**
 * The `member=NAME PEERID HOST:PORT` line that every member's poolboard.conf lists for this node
 * (its own included). A wildcard listen address (0.0.0.0, ::) is not something others can dial:
 * it becomes this machine's first non-loopback address, or loopback when there is none.
 */
export function memberLine(config: NodeConfig, peerId: string, address?: HostPort): string {
  return `member=${config.name} ${peerId} ${formatHostPort(address ?? dialableAddress(config.listen))}`
}

export function dialableAddress(listen: HostPort): HostPort {
  if (listen.host !== '0.0.0.0' && listen.host !== '::') return listen
  const family = listen.host === '::' ? 'IPv6' : 'IPv4'
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? [])
      if (!a.internal && a.family === family && !a.address.startsWith('fe80:'))
        return { host: a.address, port: listen.port }
  }
  return { host: family === 'IPv6' ? '::1' : '127.0.0.1', port: listen.port }
}
