/** Every IPv4 address but 127.0.0.0/8, and all of IPv6 but ::1 (deny beats allow). */
export const DENY_ALL_BUT_LOOPBACK = [
  '0.0.0.0/2',
  '64.0.0.0/3',
  '96.0.0.0/4',
  '112.0.0.0/5',
  '120.0.0.0/6',
  '124.0.0.0/7',
  '126.0.0.0/8',
  '128.0.0.0/1',
  '::/128',
  '::2/127',
  '::4/126',
  '::8/125',
  '::10/124',
  '1::/16',
  '2000::/3',
  'fc00::/7',
  'fe80::/10',
  'ff00::/8',
].join(',');

/**
 * The environment of a spawned `serve` whose probe reaches loopback only and which runs neither
 * the health monitor nor the crawler (a test turns on what it tests); `env` adds or overrides.
 */
export function loopbackCatalogEnv(env: Record<string, string>): Record<string, string> {
  return {
    LOG_LEVEL: 'info',
    HEALTH_MONITOR_ENABLED: 'false',
    CRAWL_ENABLED: 'false',
    HEALTH_PROBE_ALLOW: '127.0.0.0/8',
    HEALTH_PROBE_DENY: DENY_ALL_BUT_LOOPBACK,
    ...env,
  };
}
