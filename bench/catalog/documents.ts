import type { ContainerRegistry } from '../../src/catalog/model.js';

export const TAGS = [
  'ai',
  'training',
  'internal',
  'fast-pull',
  'gpu',
  'cpu',
  'edge',
  'prod',
  'dev',
  'eu',
  'us',
  'asia',
];

/** A deterministic UUID (v4 layout) for document number `i`, so the load generator knows every id. */
export function idAt(i: number): string {
  return `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
}

/** Document number `i` of the benchmark data set: realistic sizes, tags spread over 12 + 1000 values. */
export function documentAt(i: number): ContainerRegistry {
  return {
    container_registry_id: idAt(i),
    container_registry_name: `registry-${i}`,
    container_registry_metadata: {
      environment: i % 3 === 0 ? 'production' : 'dev',
      owner: `team-${i % 50}`,
      index: i,
    },
    container_registry_tags: [TAGS[i % TAGS.length]!, TAGS[(i * 7 + 3) % TAGS.length]!, `t${i % 1000}`],
    container_registry_public_url: `http://registry-${i}.example.test:5000`,
    container_registry_image_prefix: `registry-${i}.example.test:5000`,
    container_registry_config: { auth_required: i % 2 === 0 },
    container_registry_storage_info: {
      storage_type: 'fs',
      storage_size: -1,
      memory_size: 8192,
      registry_type: 'aios',
    },
  };
}

/**
 * The catalog under benchmark runs as deployed: access control on (this token, admin) and the
 * per-client rate limiter counting every request (its limit set out of reach, so it never refuses).
 */
export const BENCH_TOKEN = 'aios_bench-token-not-secret';
export const BENCH_AUTH = { authorization: `Bearer ${BENCH_TOKEN}` };
