import assert from 'node:assert/strict'
import {
  applyOverrides,
  defaultConfig,
  parseConfig,
  parseHostPort,
  renderConfig,
  SETTINGS
} from '../../daemon/host/config.js'

const PEER_A = '12D3KooWMF6yf6y1gqkPFpfyoeJYMSVES5Pmv839h2XFgmMbyLpz'
const PEER_B = '12D3KooWPEZY1p5MfZi8PRywVuDgoddgLmiuhj7K4t7yKe9cc5S9'

describe('config', () => {
  it('an empty file gives every documented default', () => {
    const config = parseConfig('', 'test.conf')
    assert.deepEqual(config, defaultConfig())
    assert.deepEqual(config.listen, { host: '0.0.0.0', port: 7700 })
    assert.deepEqual(config.api, { host: '127.0.0.1', port: 7701 })
    assert.equal(config.logLevel, 'info')
    assert.equal(config.lab, false)
  })

  it('a rendered config documents every setting and parses back to the same config', () => {
    const config = {
      ...defaultConfig(),
      name: 'alice',
      lab: true,
      members: [
        { name: 'alice', peerId: PEER_A, address: { host: '127.0.0.1', port: 7000 } },
        { name: 'bob', peerId: PEER_B, address: { host: '::1', port: 7002 } }
      ]
    }
    const text = renderConfig(config)
    for (const s of SETTINGS)
      assert.match(text, new RegExp(`^# ${s.key}: .*\\(default: `, 'm'), `setting ${s.key} is documented`)
    assert.deepEqual(parseConfig(text, 'test.conf'), config)
  })

  it('an unknown setting is refused with the file, line and the known keys', () => {
    assert.throws(
      () => parseConfig('name=a\nlisten=127.0.0.1:1\nrpcport=8332\n', 'x.conf'),
      /^UserError: x\.conf:3: unknown setting "rpcport" \(known: name, listen, api/
    )
  })

  it('a bad value names the file, line and key', () => {
    assert.throws(
      () => parseConfig('\n\nlisten=localhost:70000', 'x.conf'),
      /x\.conf:3: listen: .*"localhost" is not an IP address/
    )
    assert.throws(
      () => parseConfig('log-level=loud', 'x.conf'),
      /x\.conf:1: log-level: "loud" is not one of trace, debug/
    )
    assert.throws(() => parseConfig('lab=yes', 'x.conf'), /x\.conf:1: lab: expected 0 or 1/)
    assert.throws(() => parseConfig('name=a b', 'x.conf'), /x\.conf:1: name: "a b" is not a valid name/)
    assert.throws(() => parseConfig('just words', 'x.conf'), /x\.conf:1: expected key=value/)
  })

  it('refuses an admin API that is not on loopback', () => {
    assert.throws(() => parseConfig('api=0.0.0.0:7701', 'x.conf'), /api: the admin API must listen on loopback/)
    assert.equal(parseConfig('api=127.0.0.2:9', 'x.conf').api.host, '127.0.0.2')
    assert.equal(parseConfig('api=[::1]:9', 'x.conf').api.host, '::1')
  })

  it('refuses a setting given twice, and duplicate members', () => {
    assert.throws(() => parseConfig('name=a\nname=b', 'x.conf'), /x\.conf:2: "name" is set twice/)
    const line = `member=a ${PEER_A} 127.0.0.1:1`
    assert.throws(
      () => parseConfig(`${line}\n${line.replace('member=a', 'member=b')}`, 'x.conf'),
      /member .* is listed twice/
    )
    assert.throws(() => parseConfig(`${line}\nmember=a ${PEER_B} 127.0.0.1:2`, 'x.conf'), /member name a is used twice/)
  })

  it('a member line needs a name, a libp2p peer id and an address', () => {
    assert.throws(() => parseConfig('member=a 127.0.0.1:1', 'x.conf'), /expected NAME PEERID HOST:PORT/)
    assert.throws(() => parseConfig('member=a notapeerid0OIl 127.0.0.1:1', 'x.conf'), /is not a libp2p peer id/)
  })

  it('flags override the file by the same rules', () => {
    const config = applyOverrides(parseConfig('listen=127.0.0.1:1', 'x.conf'), {
      listen: '127.0.0.1:2',
      'log-level': undefined
    })
    assert.equal(config.listen.port, 2)
    assert.equal(config.logLevel, 'info')
    assert.throws(() => applyOverrides(config, { api: '8.8.8.8:1' }), /--api: the admin API must listen on loopback/)
  })

  it('parses IPv4 and bracketed IPv6 host:port', () => {
    assert.deepEqual(parseHostPort('10.0.0.1:80'), { host: '10.0.0.1', port: 80 })
    assert.deepEqual(parseHostPort('[::1]:80'), { host: '::1', port: 80 })
    assert.throws(() => parseHostPort('10.0.0.1'), /expected HOST:PORT/)
  })
})
