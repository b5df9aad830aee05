import ipaddr from 'ipaddr.js';
import type { HealthConfig } from './config.js';

type Range = readonly [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Never probed, whatever the configuration says: the classic SSRF targets. */
const ALWAYS_REFUSED: ReadonlyArray<[string, string]> = [
  ['169.254.0.0/16', 'link-local (incl. cloud metadata 169.254.169.254)'],
  ['fe80::/10', 'link-local'],
  ['fd00:ec2::254/128', 'cloud metadata'],
  ['100.100.100.200/32', 'cloud metadata'],
  ['224.0.0.0/4', 'multicast'],
  ['ff00::/8', 'multicast'],
  ['0.0.0.0/8', 'unspecified'],
  ['::/128', 'unspecified'],
  ['255.255.255.255/32', 'broadcast'],
];

/** Refused unless `HEALTH_PROBE_ALLOW` opens them. Private ranges are allowed: registries live there. */
const REFUSED_BY_DEFAULT: ReadonlyArray<[string, string]> = [
  ['127.0.0.0/8', 'loopback'],
  ['::1/128', 'loopback'],
];

export type AddressVerdict =
  { readonly allowed: true } | { readonly allowed: false; readonly reason: string };

/**
 * Which resolved addresses a health probe may connect to. Checked on the address the socket is
 * about to use (after DNS), so names that resolve or redirect to a refused address are caught.
 */
export class AddressPolicy {
  private readonly always: Array<[Range, string]>;
  private readonly byDefault: Array<[Range, string]>;
  private readonly allow: Range[];
  private readonly deny: Range[];

  constructor(options: { allow: readonly string[]; deny: readonly string[] }) {
    const parse = (cidr: string): Range => ipaddr.parseCIDR(cidr) as Range;
    this.always = ALWAYS_REFUSED.map(([cidr, label]) => [parse(cidr), label]);
    this.byDefault = REFUSED_BY_DEFAULT.map(([cidr, label]) => [parse(cidr), label]);
    this.allow = options.allow.map(parse);
    this.deny = options.deny.map(parse);
  }

  static fromConfig(config: HealthConfig): AddressPolicy {
    return new AddressPolicy({ allow: config.probeAllow, deny: config.probeDeny });
  }

  check(ip: string): AddressVerdict {
    let address: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      address = ipaddr.process(ip.replace(/^\[|\]$/g, '').replace(/%.*$/, ''));
    } catch {
      return { allowed: false, reason: `"${ip}" is not an IP address` };
    }
    const within = (range: Range) =>
      address.kind() === range[0].kind() && address.match(range as [ipaddr.IPv4, number]);
    for (const [range, label] of this.always) {
      if (within(range))
        return { allowed: false, reason: `${address.toString()} is ${label}, which is never probed` };
    }
    if (this.deny.some(within))
      return { allowed: false, reason: `${address.toString()} is in HEALTH_PROBE_DENY` };
    if (this.allow.some(within)) return { allowed: true };
    for (const [range, label] of this.byDefault) {
      if (within(range)) {
        return {
          allowed: false,
          reason: `${address.toString()} is ${label}, which is not probed unless HEALTH_PROBE_ALLOW includes it`,
        };
      }
    }
    return { allowed: true };
  }
}
