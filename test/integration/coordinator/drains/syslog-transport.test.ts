// syslog+tls drains against a real rsyslog (Debian's rsyslog and rsyslog-gnutls, installed by
// scripts/setup.sh, run here in the foreground with a configuration of the test's own): the
// drain's RFC 5424 frames with octet-counted framing over TLS reach rsyslog's imtcp, which
// writes each message it parsed to a file. Every line arrives once and in order, as rsyslog
// read it (the frame's message, its fields where Logplex puts them); a drain whose CA does not
// sign rsyslog's certificate delivers nothing and says why.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Drain } from '../../../../coordinator/drains/drain.js';
import { SyslogTlsTransport } from '../../../../coordinator/drains/syslog-transport.js';
import { logplexFrame } from '../../../../coordinator/drains/logplex-frame.js';
import { makePki } from '../../../helpers/pki.js';
import { eventually, tempDir } from '../../../helpers/host.js';

const RSYSLOGD = '/usr/sbin/rsyslogd';

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** rsyslog listening for syslog over TLS on a port of its own; what it received is in `out`. */
async function rsyslog(t: Test) {
  const dir = await tempDir(t, 'slipway-rsyslog-');
  const pki = await makePki(t);
  for (const [f, text] of [['ca.crt', pki.ca], ['server.crt', pki.serverCert], ['server.key', pki.serverKey]] as const) writeFileSync(join(dir, f), text, { mode: 0o600 });
  const out = join(dir, 'received.log');
  const port = 20000 + Math.floor(Math.random() * 20000);
  writeFileSync(join(dir, 'rsyslog.conf'), `
global(workDirectory="${dir}" maxMessageSize="64k"
  DefaultNetstreamDriver="gtls" DefaultNetstreamDriverCAFile="${dir}/ca.crt"
  DefaultNetstreamDriverCertFile="${dir}/server.crt" DefaultNetstreamDriverKeyFile="${dir}/server.key")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
template(name="fields" type="string" string="%pri%|%timereported:::date-rfc3339%|%hostname%|%app-name%|%procid%|%msg%\\n")
ruleset(name="drain") { action(type="omfile" file="${out}" template="fields") }
input(type="imtcp" address="127.0.0.1" port="${port}" ruleset="drain")
`);
  const child = spawn(RSYSLOGD, ['-n', '-f', join(dir, 'rsyslog.conf'), '-i', join(dir, 'rsyslog.pid')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => { stderr += b.toString('utf8'); });
  t.teardown(() => { child.kill('SIGKILL'); });
  await eventually(`rsyslog listening on ${port} (${stderr.slice(0, 300)})`, async () => ((await portOpen(port)) ? true : undefined), 15_000);
  const lines = (): string[] => (existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter((l) => l !== '') : []);
  return { url: `syslog+tls://127.0.0.1:${port}`, pki, lines };
}

t.test('rsyslog receives every line once and in order, with the fields where Logplex puts them', async (t) => {
  const rx = await rsyslog(t);
  const drain = new Drain({ transport: new SyslogTlsTransport({ url: rx.url, ca: rx.pki.ca }) });
  t.teardown(() => drain.close());
  const total = 3000;
  for (let i = 0; i < total; i++) {
    const source = i % 10 === 0 ? 'slipway' : 'app';
    drain.push(logplexFrame(`2026-12-03T10:00:${String(i % 60).padStart(2, '0')}.000Z ${source}[web.${(i % 3) + 1}]: line ${String(i).padStart(5, '0')} ${'é'.repeat(i % 5)}`));
  }
  await eventually('rsyslog to write every line', () => (rx.lines().length >= total ? true : undefined), 30_000);
  const lines = rx.lines();
  t.equal(lines.length, total, 'every line once');
  t.same(lines.map((l) => Number(/line (\d+)/.exec(l)?.[1])), Array.from({ length: total }, (_, i) => i), 'in order');
  t.equal(lines[1], `190|2026-12-03T10:00:01.000Z|host|app|web.2|line 00001 é`, 'an app line: local7.info, its time, host, app, the dyno, the message (UTF-8 intact)');
  t.equal(lines[0], `45|2026-12-03T10:00:00.000Z|host|slipway|web.1|line 00000 `, "the agent's line: syslog.notice, source slipway");
  t.match(drain.stats(), { deliveredFrames: total, droppedFrames: 0, retries: 0 });
});

t.test('a drain that does not trust the certificate delivers nothing and says why', async (t) => {
  const rx = await rsyslog(t);
  const drain = new Drain({ transport: new SyslogTlsTransport({ url: rx.url, ca: rx.pki.otherCa }), backoff: { baseMs: 50, capMs: 100 }, jitter: 0 });
  t.teardown(() => drain.close());
  drain.push(logplexFrame('2026-12-03T10:00:00.000Z app[web.1]: secret line'));
  await eventually('a retry', () => (drain.stats().retries >= 2 ? true : undefined), 10_000);
  t.match(drain.stats().lastError, /certificate|self.signed|unable to verify/i, 'the TLS failure is the reason');
  t.same(rx.lines(), [], 'rsyslog got nothing');
  t.equal(drain.stats().queuedFrames, 1, 'the line waits to be retried');
});
