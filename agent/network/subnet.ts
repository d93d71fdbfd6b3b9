// The dyno subnet (config `network.subnet`, IPv4, /16 to /24): its first host address is the
// bridge's (the dynos' gateway), the rest are handed to dynos by the address leases
// (leases.ts). Pure arithmetic on 32-bit numbers.
import { SlipwayError } from '../../shared/errors.js';

export interface Subnet {
  cidr: string;
  /** The network address as a number. */
  base: number;
  prefix: number;
  /** The bridge's address: base + 1. */
  gateway: string;
  /** Host addresses a dyno may get: base + 2 .. broadcast - 1. */
  firstDyno: number;
  lastDyno: number;
}

export function ipToInt(ip: string): number | undefined {
  const parts = ip.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^[0-9]{1,3}$/.test(p) || Number(p) > 255) return undefined;
    n = n * 256 + Number(p);
  }
  return n;
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function parseSubnet(cidr: string): Subnet {
  const [ip = '', bits = ''] = cidr.split('/');
  const addr = ipToInt(ip);
  const prefix = Number(bits);
  if (addr === undefined || !/^[0-9]+$/.test(bits) || prefix < 16 || prefix > 24) {
    throw new SlipwayError('CONFIG_INVALID', `network.subnet ${JSON.stringify(cidr)} is not an IPv4 /16 to /24`);
  }
  const size = 2 ** (32 - prefix);
  const base = addr - (addr % size);
  if (base !== addr) throw new SlipwayError('CONFIG_INVALID', `network.subnet ${cidr}: the address has host bits set (the network is ${intToIp(base)}/${prefix})`);
  return { cidr, base, prefix, gateway: intToIp(base + 1), firstDyno: base + 2, lastDyno: base + size - 2 };
}

export function inSubnet(s: Subnet, ip: string): boolean {
  const n = ipToInt(ip);
  return n !== undefined && n >= s.firstDyno && n <= s.lastDyno;
}
