import ipaddr from 'ipaddr.js';
import { ConfigError, readInt, readList, type Env } from '../../shared/config/env.js';

/** The health probe's policy and limits. */
export interface HealthConfig {
  /** Default timeout of one probe, redirects and login included. */
  readonly probeTimeoutMs: number;
  /** CIDRs probes may reach although the default policy refuses them (e.g. 127.0.0.0/8 in development). */
  readonly probeAllow: readonly string[];
  /** CIDRs probes never reach, in addition to the built-in ones. */
  readonly probeDeny: readonly string[];
  /** Outbound probes in flight at once, background monitor and on-demand checks together. */
  readonly probeMaxConcurrent: number;
}

export const HEALTH_ENV_VARS = [
  'HEALTH_PROBE_TIMEOUT_MS',
  'HEALTH_PROBE_ALLOW',
  'HEALTH_PROBE_DENY',
  'HEALTH_PROBE_MAX_CONCURRENT',
] as const;

export function loadHealthConfig(env: Env): HealthConfig {
  return Object.freeze({
    probeTimeoutMs: readInt(env, 'HEALTH_PROBE_TIMEOUT_MS', 5_000, 100, 60_000),
    probeAllow: readCidrs(env, 'HEALTH_PROBE_ALLOW'),
    probeDeny: readCidrs(env, 'HEALTH_PROBE_DENY'),
    probeMaxConcurrent: readInt(env, 'HEALTH_PROBE_MAX_CONCURRENT', 256, 1, 4096),
  });
}

function readCidrs(env: Env, name: string): string[] {
  const cidrs = readList(env, name, []);
  for (const cidr of cidrs) {
    try {
      ipaddr.parseCIDR(cidr);
    } catch {
      throw new ConfigError(
        name,
        `must be a comma-separated list of CIDRs (e.g. 127.0.0.0/8,::1/128), got "${cidr}"`,
      );
    }
  }
  return cidrs;
}
