// Who this host is on EC2: instance id, type, availability zone, region and private IPv4, read
// once at start from IMDSv2 (imds.ts). The agent id defaults to the instance id and the address
// reported for dynos to the private IPv4 (start.ts); the hello carries all of it
// (AgentIdentity.ec2, shared/protocol.ts).
//
// `ec2.enabled: 'auto'` (the default) must cost a host that is not on EC2 next to nothing and
// never fail its start. With the default endpoint it first reads the machine's DMI/hypervisor
// identification, as cloud-init's ds-identify does: every current instance type says "Amazon
// EC2" there (Nitro: sys_vendor and bios_vendor; Xen: /sys/hypervisor/uuid and product_uuid
// start with "ec2"). Without that, no packet goes to 169.254.169.254 (a laptop, a CI runner, a
// VM elsewhere: the address may even route somewhere). Only then, or with an endpoint
// configured, one token PUT bounded by PROBE_TIMEOUT_MS decides. `enabled: true` skips the DMI
// check and fails the start when the service cannot say who the host is (the agent id would
// otherwise be the hostname, another agent to the coordinator); systemd restarts it.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SlipwayError } from '../../../shared/errors.js';
import type { Logger } from '../../../shared/log.js';
import { IMDS_DEFAULT_ENDPOINT, ImdsClient } from './imds.js';

/** The probe of 'auto': a local service answers a token PUT in ~1 ms, so 500 ms means none. */
export const PROBE_TIMEOUT_MS = 500;
/** `enabled: true`: attempts at the identity before the start fails, ~1 s apart. */
export const IDENTITY_ATTEMPTS = 3;

export interface Ec2Identity {
  instanceId: string;
  instanceType: string;
  availabilityZone: string;
  region: string;
  privateIp: string;
}

export interface Ec2Settings {
  enabled: 'auto' | boolean;
  /** Undefined: IMDS_DEFAULT_ENDPOINT. */
  endpoint: string | undefined;
  /** How often the host signals are polled (host-signals.ts). */
  pollMs: number;
}

const DOCUMENT_PATH = '/latest/dynamic/instance-identity/document';
const ID = /^i-[0-9a-f]{8,32}$/;

/** DMI and hypervisor files that name EC2 (readable by root; the agent runs as root). */
export async function dmiSaysEc2(root = '/sys'): Promise<boolean> {
  const read = (p: string) => readFile(join(root, p), 'utf8').then((s) => s.trim(), () => '');
  const [sysVendor, biosVendor, hypervisor, productUuid, assetTag] = await Promise.all([
    read('devices/virtual/dmi/id/sys_vendor'), read('devices/virtual/dmi/id/bios_vendor'), read('hypervisor/uuid'),
    read('devices/virtual/dmi/id/product_uuid'), read('devices/virtual/dmi/id/board_asset_tag'),
  ]);
  return [sysVendor, biosVendor].includes('Amazon EC2') || /^ec2/i.test(hypervisor) || /^ec2/i.test(productUuid) || ID.test(assetTag);
}

/** The identity from the instance identity document, or the meta-data paths where the document
 * is absent or lacks a field. Throws IMDS_* (IMDS_BAD_RESPONSE when a field is missing). */
export async function readIdentity(client: ImdsClient): Promise<Ec2Identity> {
  const doc = await client.getJson(DOCUMENT_PATH).catch((err: unknown) => {
    if (err instanceof SlipwayError && err.code === 'IMDS_BAD_RESPONSE') return undefined;
    throw err;
  });
  const d = (doc && typeof doc === 'object' ? doc : {}) as Record<string, unknown>;
  const field = async (name: string, path: string): Promise<string> => {
    const v = typeof d[name] === 'string' && d[name] !== '' ? d[name] : (await client.get(path))?.trim();
    if (!v) throw new SlipwayError('IMDS_BAD_RESPONSE', `instance metadata has no ${name} (document and ${path})`);
    return v;
  };
  const identity: Ec2Identity = {
    instanceId: await field('instanceId', '/latest/meta-data/instance-id'),
    instanceType: await field('instanceType', '/latest/meta-data/instance-type'),
    availabilityZone: await field('availabilityZone', '/latest/meta-data/placement/availability-zone'),
    region: await field('region', '/latest/meta-data/placement/region'),
    privateIp: await field('privateIp', '/latest/meta-data/local-ipv4'),
  };
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(identity.instanceId)) throw new SlipwayError('IMDS_BAD_RESPONSE', 'instance id is not an id');
  return identity;
}

/** The agent id and dyno address on EC2: the instance id and private IPv4, unless the operator
 * set them (`agentIdSet`, `addressSet`: agent/config/resolve.ts). */
export function instanceNaming(
  set: { agentIdSet: boolean; addressSet: boolean }, identity: Ec2Identity | undefined, configured: { agentId: string; address: string },
): { agentId: string; address: string } {
  return {
    agentId: identity && !set.agentIdSet ? identity.instanceId : configured.agentId,
    address: identity && !set.addressSet ? identity.privateIp : configured.address,
  };
}

export interface DetectOptions {
  log: Logger;
  /** Tests: the DMI root, and the pause between attempts of `enabled: true`. */
  sysRoot?: string;
  retryMs?: number;
}

/** The client and identity when this host is on EC2, undefined when it is not (or EC2 is off). */
export async function detectEc2(s: Ec2Settings, o: DetectOptions): Promise<{ client: ImdsClient; identity: Ec2Identity } | undefined> {
  if (s.enabled === false) return undefined;
  const client = new ImdsClient({ endpoint: s.endpoint ?? IMDS_DEFAULT_ENDPOINT });
  if (s.enabled === 'auto') {
    if (s.endpoint === undefined && !(await dmiSaysEc2(o.sysRoot))) {
      o.log.debug('not on EC2 (DMI does not name it): no instance metadata');
      return undefined;
    }
    if (!(await client.probe(PROBE_TIMEOUT_MS))) {
      o.log.info({ endpoint: client.endpoint }, 'no instance metadata service answered: not on EC2');
      return undefined;
    }
    try {
      return { client, identity: await readIdentity(client) };
    } catch (err) {
      o.log.warn({ err, code: (err as SlipwayError).code }, 'instance metadata answered the token but not the identity: starting without EC2 identity');
      return undefined;
    }
  }
  for (let attempt = 1; ; attempt++) {
    try {
      return { client, identity: await readIdentity(client) };
    } catch (err) {
      if (attempt >= IDENTITY_ATTEMPTS) {
        const code = err instanceof SlipwayError ? err.code : 'IMDS_UNAVAILABLE';
        throw new SlipwayError(code, `ec2.enabled is true but the instance identity could not be read: ${(err as Error).message}`, { cause: err });
      }
      await new Promise((r) => setTimeout(r, o.retryMs ?? 1000));
    }
  }
}
