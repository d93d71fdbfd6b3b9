// A fake EC2 instance metadata service (IMDSv2) on 127.0.0.1: the one mock the design allows
// (DESIGN.md, Testing): the real service exists only on an EC2 instance, and tests must never
// send a packet to 169.254.169.254. It is a real HTTP server, so the agent's client runs its
// real fetch, timeouts and connection handling against it.
//
// What it implements of the service: PUT /latest/api/token with
// X-aws-ec2-metadata-token-ttl-seconds (1-21600, else 400) handing out a token that expires
// after its TTL; every GET must carry a live token in X-aws-ec2-metadata-token, else 401 (the
// service's answer with HttpTokens=required: IMDSv1 refused); 404 for a path with nothing to
// say (no spot notice, no rebalance recommendation, not in an Auto Scaling group). Tests set the
// identity, the notices and the lifecycle state, can make the service silent (it accepts the
// connection and never answers), revoke tokens, and read request counts: `withoutToken` counts
// GETs that carried no token header at all (an IMDSv1 request), which the agent must never make.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomBytes } from 'node:crypto';

export interface FakeIdentity {
  instanceId: string;
  instanceType: string;
  availabilityZone: string;
  region: string;
  privateIp: string;
}

export interface FakeImdsCounts {
  tokenPuts: number;
  gets: number;
  withoutToken: number;
  unauthorized: number;
  byPath: Map<string, number>;
}

export class FakeImds {
  identity: FakeIdentity = { instanceId: 'i-0123456789abcdef0', instanceType: 'm6i.large', availabilityZone: 'eu-west-1b', region: 'eu-west-1', privateIp: '10.0.3.17' };
  /** Raw bodies (tests may set a body that is not JSON); undefined answers 404. */
  spotAction: string | undefined;
  rebalance: string | undefined;
  lifecycleState: string | undefined;
  /** Accept connections and never answer (a hung service). */
  silent = false;
  /** Answer GETs with this status instead (500, 503). */
  failWith: number | undefined;
  readonly counts: FakeImdsCounts = { tokenPuts: 0, gets: 0, withoutToken: 0, unauthorized: 0, byPath: new Map() };
  private readonly tokens = new Map<string, number>();
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;
  url = '';

  /** The time tokens are checked against (tests step it to expire them). */
  now: () => number = () => Date.now();

  async start(): Promise<this> {
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** Every token handed out stops working (the service restarted). */
  revokeTokens(): void {
    this.tokens.clear();
  }

  spotNotice(action: 'terminate' | 'stop' | 'hibernate', time: Date): void {
    this.spotAction = JSON.stringify({ action, time: time.toISOString().replace(/\.\d{3}Z$/, 'Z') });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]!;
    this.counts.byPath.set(`${req.method} ${path}`, (this.counts.byPath.get(`${req.method} ${path}`) ?? 0) + 1);
    if (req.method === 'PUT') this.counts.tokenPuts++;
    else this.counts.gets++;
    if (this.silent) return; // the socket stays open; close() destroys it
    req.resume();
    if (req.method === 'PUT' && path === '/latest/api/token') {
      const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > 21_600) return this.send(res, 400, '');
      const token = randomBytes(24).toString('base64url');
      this.tokens.set(token, this.now() + ttl * 1000);
      res.setHeader('x-aws-ec2-metadata-token-ttl-seconds', String(ttl));
      return this.send(res, 200, token);
    }
    if (req.method !== 'GET') return this.send(res, 405, '');
    const token = req.headers['x-aws-ec2-metadata-token'];
    if (token === undefined) this.counts.withoutToken++;
    const expires = typeof token === 'string' ? this.tokens.get(token) : undefined;
    if (expires === undefined || expires <= this.now()) {
      this.counts.unauthorized++;
      return this.send(res, 401, '');
    }
    if (this.failWith !== undefined) return this.send(res, this.failWith, '');
    const body = this.body(path);
    return body === undefined ? this.send(res, 404, '') : this.send(res, 200, body);
  }

  private body(path: string): string | undefined {
    const id = this.identity;
    switch (path) {
      case '/latest/dynamic/instance-identity/document':
        return JSON.stringify({
          accountId: '123456789012', architecture: 'x86_64', availabilityZone: id.availabilityZone, imageId: 'ami-0abcdef1234567890',
          instanceId: id.instanceId, instanceType: id.instanceType, pendingTime: '2026-12-01T09:00:00Z', privateIp: id.privateIp,
          region: id.region, version: '2017-09-30',
        }, null, 2);
      case '/latest/meta-data/instance-id': return id.instanceId;
      case '/latest/meta-data/instance-type': return id.instanceType;
      case '/latest/meta-data/placement/availability-zone': return id.availabilityZone;
      case '/latest/meta-data/placement/region': return id.region;
      case '/latest/meta-data/local-ipv4': return id.privateIp;
      case '/latest/meta-data/spot/instance-action': return this.spotAction;
      case '/latest/meta-data/events/recommendations/rebalance': return this.rebalance;
      case '/latest/meta-data/autoscaling/target-lifecycle-state': return this.lifecycleState;
      default: return undefined;
    }
  }

  private send(res: ServerResponse, status: number, body: string): void {
    res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }
}

export async function startFakeImds(t: { teardown(fn: () => unknown): void }): Promise<FakeImds> {
  const fake = await new FakeImds().start();
  t.teardown(() => fake.close());
  return fake;
}
