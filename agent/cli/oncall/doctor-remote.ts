// `slipway-agent doctor`'s checks of what the host talks to: the coordinator (reachable, its TLS
// accepted, the agent's token accepted on a real WebSocket upgrade made the way the agent makes
// it, agent/link/transport.ts; the clock against its HTTP Date), EC2's instance metadata service
// (IMDSv2, agent/host/ec2/imds.ts) and the local agent's diagnostics endpoint. Each is bounded.
// The upgrade is closed as soon as it opens: no hello is sent, so the coordinator never takes it
// for the agent (a running agent's link is not replaced).
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { existsSync } from 'node:fs';
import { dial, type DialOptions } from '../../link/transport.js';
import { ImdsClient } from '../../host/ec2/imds.js';
import { dmiSaysEc2, readIdentity } from '../../host/ec2/identity.js';
import { DiagnosticsClient } from './client.js';
import { asSlipwayError } from '../../../shared/errors.js';
import { duration } from '../../../shared/tables.js';
import { HOST_CHECK_TIMEOUT_MS, type CheckResult, type CheckStatus } from './doctor-host.js';

/** Skew the Date header cannot show (it has whole seconds; half a round trip on top). */
export const CLOCK_OK_MS = 2_000;
/** Beyond this a signed S3 request of a slug download is near refusal (RequestTimeTooSkewed at
 * 15 min), TLS certificates may look not yet valid, and log lines of hosts interleave wrongly. */
export const CLOCK_FAIL_MS = 5 * 60_000;
/** A certificate that expires within this is a warning: renew it before the fleet cannot dial. */
const CERT_WARN_DAYS = 14;

const result = (status: CheckStatus, check: string, detail: string): CheckResult => ({ status, check, detail });
const why = (err: unknown): string => (err as NodeJS.ErrnoException).code ?? (err as Error).message;
const LOOPBACK = /^(127\.|localhost$|::1$)/;

interface Endpoint { host: string; port: number; secure: boolean; url: URL }

function endpointOf(urlText: string): Endpoint {
  const url = new URL(urlText);
  const secure = url.protocol === 'wss:';
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || (secure ? 443 : 80)), secure, url };
}

function tcpReach(e: Endpoint): Promise<CheckResult> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const s = netConnect({ host: e.host, port: e.port, timeout: HOST_CHECK_TIMEOUT_MS });
    s.once('connect', () => { s.destroy(); resolve(result('ok', 'coordinator.reach', `${e.host}:${e.port} accepts TCP (${Date.now() - t0} ms)`)); });
    s.once('timeout', () => { s.destroy(); resolve(result('fail', 'coordinator.reach', `${e.host}:${e.port}: no TCP answer within ${HOST_CHECK_TIMEOUT_MS} ms (firewall, security group?)`)); });
    s.once('error', (err) => resolve(result('fail', 'coordinator.reach', `${e.host}:${e.port}: ${why(err)}`)));
  });
}

function tlsCheck(e: Endpoint, o: DialOptions): Promise<CheckResult> {
  if (!e.secure) {
    return Promise.resolve(LOOPBACK.test(e.host)
      ? result('ok', 'coordinator.tls', 'ws:// on loopback: no TLS needed')
      : result('warn', 'coordinator.tls', `ws:// to ${e.host}: the agent token crosses the network in clear; use wss://`));
  }
  return new Promise((resolve) => {
    const s = tlsConnect({
      host: e.host, port: e.port, servername: /^[0-9.:]+$/.test(e.host) ? undefined : e.host, timeout: HOST_CHECK_TIMEOUT_MS,
      ...(o.ca ? { ca: o.ca } : {}), ...(o.clientCert ? { cert: o.clientCert.cert, key: o.clientCert.key } : {}),
    });
    s.once('secureConnect', () => {
      const cert = s.getPeerCertificate();
      const days = cert.valid_to ? Math.floor((Date.parse(cert.valid_to) - Date.now()) / 86_400_000) : undefined;
      const text = `${s.getProtocol() ?? 'TLS'}, certificate ${String(cert.subject?.CN ?? '?')} valid ${days ?? '?'} more days`;
      s.destroy();
      resolve(result(days !== undefined && days < CERT_WARN_DAYS ? 'warn' : 'ok', 'coordinator.tls', text));
    });
    s.once('timeout', () => { s.destroy(); resolve(result('fail', 'coordinator.tls', `no TLS handshake within ${HOST_CHECK_TIMEOUT_MS} ms`)); });
    s.once('error', (err) => resolve(result('fail', 'coordinator.tls', `refused: ${(err as Error).message} (caFile: ${o.ca ? 'set' : 'system CAs'})`)));
  });
}

/** The agent's own upgrade: open is the token accepted; a refusal names its code. */
function tokenCheck(o: DialOptions): Promise<CheckResult> {
  return new Promise((resolve) => {
    const ws = dial(o);
    let done = false;
    const finish = (r: CheckResult) => {
      if (done) return;
      done = true;
      resolve(r);
    };
    ws.on('open', () => {
      finish(result('ok', 'coordinator.token', 'the WebSocket upgrade with the agent token was accepted'));
      ws.close(1000, 'slipway-agent doctor');
      setTimeout(() => ws.terminate(), 1_000).unref();
    });
    ws.on('unexpected-response', (_req, res: IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c.slice(0, 4096); });
      res.on('end', () => {
        let code = '';
        try {
          code = (JSON.parse(body) as { error?: { code?: string } }).error?.code ?? '';
        } catch { /* not the SDK's JSON */ }
        const status = res.statusCode ?? 0;
        finish(result('fail', 'coordinator.token', status === 401
          ? `the coordinator refused the agent token (HTTP 401${code ? ` ${code}` : ''}): check tokenFile`
          : `the coordinator refused the upgrade: HTTP ${status}${code ? ` ${code}` : ''}`));
        ws.terminate();
      });
    });
    ws.on('error', (err) => finish(result('fail', 'coordinator.token', `upgrade failed: ${err.message}`)));
    ws.on('close', () => finish(result('fail', 'coordinator.token', 'the coordinator closed the connection before the upgrade')));
  });
}

/** Our clock against the coordinator's HTTP Date (a GET on the agent URL, without an upgrade). */
function clockCheck(e: Endpoint, o: DialOptions): Promise<CheckResult> {
  return new Promise((resolve) => {
    const sent = Date.now();
    const options = {
      host: e.host, port: e.port, path: e.url.pathname, method: 'GET', timeout: HOST_CHECK_TIMEOUT_MS,
      ...(e.secure && o.ca ? { ca: o.ca } : {}), ...(e.secure && o.clientCert ? { cert: o.clientCert.cert, key: o.clientCert.key } : {}),
    };
    const req = (e.secure ? httpsRequest : httpRequest)(options, (res) => {
      res.resume();
      const received = Date.now();
      const date = res.headers.date ? Date.parse(res.headers.date) : NaN;
      if (Number.isNaN(date)) return resolve(result('warn', 'clock', 'the coordinator sent no Date header: skew unknown'));
      // Date is truncated to the second: its middle is half a second later.
      const skew = (sent + received) / 2 - (date + 500);
      const ahead = skew > 0 ? 'ahead of' : 'behind';
      const text = `${duration(Math.abs(skew))} ${ahead} the coordinator (Date ${res.headers.date})`;
      const size = Math.abs(skew);
      resolve(result(size > CLOCK_FAIL_MS ? 'fail' : size > CLOCK_OK_MS ? 'warn' : 'ok', 'clock', size <= CLOCK_OK_MS ? `within ${CLOCK_OK_MS / 1000} s of the coordinator` : `${text}: check chrony/NTP`));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${HOST_CHECK_TIMEOUT_MS} ms`)));
    req.on('error', (err) => resolve(result('warn', 'clock', `could not read the coordinator's Date: ${err.message}`)));
    req.end();
  });
}

/** Reach, TLS, token and clock; past an unreachable coordinator nothing else is tried. */
export async function coordinatorChecks(link: DialOptions | undefined): Promise<CheckResult[]> {
  if (!link) return [result('fail', 'coordinator', 'not checked: the config has no coordinator URL or token (see the config line)')];
  const e = endpointOf(link.url);
  const reach = await tcpReach(e);
  if (reach.status === 'fail') return [reach];
  const tls = await tlsCheck(e, link);
  if (tls.status === 'fail') return [reach, tls];
  const [token, clock] = await Promise.all([tokenCheck(link), clockCheck(e, link)]);
  return [reach, tls, token, clock];
}

/** IMDSv2 on EC2: a token, then the identity. `ec2.enabled: false` is not checked; `auto` off EC2
 * (DMI does not name it, no endpoint configured) sends no packet. A failure is `fail` where
 * the agent needs the service (enabled true, or DMI says EC2), else `warn`. */
export async function imdsCheck(ec2: { enabled: 'auto' | boolean; endpoint: string | undefined }, sysRoot?: string): Promise<CheckResult> {
  if (ec2.enabled === false) return result('ok', 'imds', 'ec2.enabled is false: not checked');
  const onEc2 = await dmiSaysEc2(sysRoot);
  if (ec2.enabled === 'auto' && ec2.endpoint === undefined && !onEc2) return result('ok', 'imds', 'not on EC2 (DMI does not name it): not checked');
  const client = new ImdsClient(ec2.endpoint ? { endpoint: ec2.endpoint } : {});
  try {
    const id = await readIdentity(client);
    return result('ok', 'imds', `IMDSv2 at ${client.endpoint}: ${id.instanceId} (${id.instanceType}, ${id.availabilityZone})`);
  } catch (err) {
    const e = asSlipwayError(err);
    const needed = ec2.enabled === true || onEc2;
    return result(needed ? 'fail' : 'warn', 'imds', `IMDSv2 at ${client.endpoint}: ${e.code} ${e.message}${needed ? '' : ' (ec2.enabled auto: the agent starts without EC2)'}`);
  }
}

/** Whether an agent answers here; none is a warning (doctor checks a host with or without one). */
export async function agentCheck(listen: string, tokenFile: string): Promise<CheckResult> {
  if (!existsSync(tokenFile)) return result('warn', 'agent', `no diagnostics token at ${tokenFile}: no agent has started with this state dir`);
  try {
    const status = await new DiagnosticsClient({ listen, tokenFile }, HOST_CHECK_TIMEOUT_MS).get<{ link?: { state?: string }; dynos?: number }>('/v1/status');
    return result('ok', 'agent', `answers at ${listen}: link ${status.link?.state ?? '?'}, ${status.dynos ?? '?'} dynos`);
  } catch (err) {
    const e = asSlipwayError(err);
    if (e.code === 'DIAGNOSTICS_UNREACHABLE') return result('warn', 'agent', `no agent answers at ${listen}: the on-call commands need a running agent`);
    return result('fail', 'agent', `${e.code}: ${e.message}`);
  }
}

