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

/**
 * IPv6 forms that carry an IPv4 address, and where: a probe to one reaches (through a NAT64
 * gateway, a 6to4 or Teredo relay, or a dual stack) the IPv4 address inside, so that address is
 * checked by the IPv4 rules. `::ffff:0:0/96` mapped addresses are unwrapped by ipaddr.js already.
 */
const EMBEDDING: ReadonlyArray<[string, string, (bytes: number[]) => number[][]]> = [
  ['::ffff:0:0:0/96', 'IPv4-translated', (b) => [b.slice(12, 16)]],
  ['64:ff9b::/96', 'NAT64', (b) => [b.slice(12, 16)]],
  ['2002::/16', '6to4', (b) => [b.slice(2, 6)]],
  // Teredo: the server's address, and the client's (stored inverted).
  ['2001::/32', 'Teredo', (b) => [b.slice(4, 8), b.slice(12, 16).map((byte) => byte ^ 0xff)]],
];

/** Refused whatever the allow list says: deprecated or local forms whose IPv4 part cannot be trusted. */
const ALWAYS_REFUSED_V6: ReadonlyArray<[string, string]> = [
  ['::/96', 'an IPv4-compatible IPv6 address (deprecated, RFC 4291)'],
  ['64:ff9b:1::/48', 'a local-use NAT64 address (RFC 8215)'],
];

export type AddressVerdict =
  { readonly allowed: true } | { readonly allowed: false; readonly reason: string };

/**
 * Which resolved addresses a health probe may connect to. Checked on the address the socket is
 * about to use (after DNS), so names that resolve or redirect to a refused address are caught.
 */
export class AddressPolicy {
  private readonly always: Array<[Range, string]>;
  private readonly alwaysV6: Array<[Range, string]>;
  private readonly embedding: Array<[Range, string, (bytes: number[]) => number[][]]>;
  private readonly byDefault: Array<[Range, string]>;
  private readonly allow: Range[];
  private readonly deny: Range[];

  constructor(options: { allow: readonly string[]; deny: readonly string[] }) {
    const parse = (cidr: string): Range => ipaddr.parseCIDR(cidr) as Range;
    this.always = ALWAYS_REFUSED.map(([cidr, label]) => [parse(cidr), label]);
    this.alwaysV6 = ALWAYS_REFUSED_V6.map(([cidr, label]) => [parse(cidr), label]);
    this.embedding = EMBEDDING.map(([cidr, label, extract]) => [parse(cidr), label, extract]);
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
      let bare = ip.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
      // ipaddr.js reads `::127.0.0.1` (IPv4-compatible) as `::ffff:127.0.0.1` (mapped): let the
      // WHATWG URL parser, which connects the way Node will, write IPv6 in hex first.
      if (bare.includes(':')) bare = new URL(`http://[${bare}]/`).hostname.slice(1, -1);
      const raw = ipaddr.parse(bare);
      if (raw.kind() === 'ipv6') {
        const refused = this.refusedV6(raw as ipaddr.IPv6);
        if (refused) return refused;
      }
      address = ipaddr.process(bare);
    } catch {
      return { allowed: false, reason: `"${ip}" is not an IP address` };
    }
    const within = (range: Range) =>
      address.kind() === range[0].kind() && address.match(range as [ipaddr.IPv4, number]);
    for (const [range, label] of this.always) {
      if (within(range))
        return { allowed: false, reason: `${address.toString()} is ${label}, which is never probed` };
    }
    if (address.kind() === 'ipv6') {
      const embedded = this.embeddedVerdict(address as ipaddr.IPv6, within);
      if (embedded) return embedded;
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

  /** Refusal of the IPv6 forms refused outright (`::` and `::1` have rules of their own), or undefined. */
  private refusedV6(address: ipaddr.IPv6): AddressVerdict | undefined {
    const text = address.toNormalizedString();
    if (text === '0:0:0:0:0:0:0:0' || text === '0:0:0:0:0:0:0:1') return undefined;
    for (const [range, label] of this.alwaysV6)
      if (address.match(range as [ipaddr.IPv6, number]))
        return { allowed: false, reason: `${address.toString()} is ${label}, which is never probed` };
    return undefined;
  }

  /** The verdict on an IPv6 address that embeds IPv4 (refused if any embedded address is), or undefined. */
  private embeddedVerdict(
    address: ipaddr.IPv6,
    within: (range: Range) => boolean,
  ): AddressVerdict | undefined {
    for (const [range, label, extract] of this.embedding) {
      if (!within(range)) continue;
      for (const bytes of extract(address.toByteArray())) {
        const inner = new ipaddr.IPv4(bytes).toString();
        const verdict = this.check(inner);
        if (!verdict.allowed)
          return {
            allowed: false,
            reason: `${address.toString()} is ${label} for ${inner}: ${verdict.reason}`,
          };
      }
    }
    return undefined;
  }
}
