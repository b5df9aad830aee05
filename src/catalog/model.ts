/**
 * The catalog's documents and the shapes the query language produces: the model every layer
 * shares (domain, store, language, health, routes), so it sits below all of them and imports
 * nothing of the catalog.
 */

/** The AIOS `ContainerRegistry` document, exactly the seed's eight fields. */
export interface ContainerRegistry {
  container_registry_id: string;
  container_registry_name: string;
  container_registry_metadata: Record<string, unknown>;
  container_registry_tags: string[];
  container_registry_public_url: string;
  container_registry_image_prefix: string;
  container_registry_config: Record<string, unknown>;
  container_registry_storage_info: Record<string, unknown>;
}

/** A document with the store's version counter (starts at 1, +1 per successful replace). */
export interface StoredRegistry {
  readonly document: ContainerRegistry;
  readonly version: number;
}

/** A validated MongoDB-style filter (see src/catalog/language/query-language.ts). */
export type Filter = Readonly<Record<string, unknown>>;

/** Sort keys in priority order; 1 ascending, -1 descending. The id is always the final tie-breaker. */
export type SortSpec = ReadonlyArray<readonly [path: string, direction: 1 | -1]>;

/** A probe's verdict (DESIGN.md section 5). */
export type HealthStatus = 'healthy' | 'unhealthy' | 'unreachable' | 'refused';

/**
 * The first four members keep the original AIOS service's meanings (`url`: the public URL;
 * `reason`: the HTTP reason phrase); `probe_url` and `detail` are ours.
 */
export interface HealthReport {
  reachable: boolean;
  status_code: number | null;
  /** The HTTP reason phrase of the answer (`OK`, `Not Found`); null when nothing answered. */
  reason: string | null;
  /** The registry's public URL, as stored. */
  url: string;
  /** The URL probed (`<public_url>/v2/`, after same-host redirects). */
  probe_url: string;
  /** Why the status is what it is, in one sentence. */
  detail: string;
  status: HealthStatus;
  oci_compatible: boolean;
  api_version: string | null;
  auth: { scheme: string; realm?: string; service?: string } | null;
  latency_ms: number;
  checked_at: string;
  error: string | null;
  credentials_accepted?: boolean | null;
}

/** What is known of one registry's health. */
export interface HealthRecord {
  readonly registryId: string;
  readonly last: HealthReport;
  /** Newest first, at most the configured history size. */
  readonly history: readonly HealthReport[];
}

/** What a probe is asked to check: a registry's URL and how to reach it. */
export interface ProbeTarget {
  /** The registry's `container_registry_public_url`. */
  url: string;
  timeoutMs?: number;
  insecureSkipTlsVerify?: boolean;
  /** PEM certificates to trust for this registry. */
  caBundle?: string;
  credentials?: { username?: string; password?: string; token?: string };
}

/** One platform of an image (an index lists one per child; a single image has one entry). */
export interface ImagePlatform {
  os: string;
  architecture: string;
  variant?: string;
  digest: string;
}

/** Referrer counts of an image: signatures, SBOMs, attestations and anything else. */
export interface ImageReferrers {
  signatures: number;
  sboms: number;
  attestations: number;
  other: number;
  artifact_types: string[];
}

/** An image record (DESIGN.md section 8): what one registry holds under one repository and tag. */
export interface ContainerImage {
  container_registry_id: string;
  repository: string;
  /** Null for an untagged digest. */
  tag: string | null;
  digest: string;
  media_type: string;
  platforms: ImagePlatform[];
  /** Bytes of config and layers; for an index, the sum over the children that were read. */
  size: number;
  pull_reference: string;
  referrers: ImageReferrers;
  first_seen: string;
  last_seen: string;
  source: 'crawl' | 'event';
}

/** What one crawl of a registry did (`POST|GET /container_registry/<id>/crawl`). */
export interface CrawlReport {
  container_registry_id: string;
  started_at: string;
  repositories: number;
  tags: number;
  added: number;
  updated: number;
  removed: number;
  requests: number;
  errors: string[];
  /** True when every listing and manifest was read: only then are unseen records removed. */
  complete: boolean;
  duration_ms: number;
}

/** A self-registered registry's heartbeat status (DESIGN.md section 12). */
export type HeartbeatStatus = 'live' | 'draining' | 'stale';

/** One process of a self-registered registry, as its last heartbeat described it. */
export interface HeartbeatInstance {
  instance_id: string;
  /** What the instance said: `draining` after SIGTERM. */
  status: 'live' | 'draining';
  version: string;
  /** Bytes used and free on the registry's storage; null where the backend cannot tell (S3). */
  storage: { used_bytes: number | null; free_bytes: number | null };
  repositories: number | null;
  /** The instance's heartbeat interval: three of them without a beat and it is stale. */
  interval_s: number;
  started_at: string;
  last_seen: string;
}

/** What the catalog keeps of a self-registered registry, beside its entry. */
export interface HeartbeatRecord {
  registry_id: string;
  /** The name of the token that registered it first; null when access control was off. */
  owner: string | null;
  registered_at: string;
  /** Newest heartbeat of any instance; null until the first one. */
  last_seen: string | null;
  instances: HeartbeatInstance[];
  /** When the stale transition was announced (the watch's job); null while live. */
  stale_since: string | null;
}

/** The `heartbeat` member of a health report. */
export interface HeartbeatView {
  status: HeartbeatStatus;
  last_seen: string | null;
  /** Seconds without a heartbeat after which the registry is stale (three intervals). */
  stale_after_s: number;
  instances: Array<Omit<HeartbeatInstance, 'status'> & { status: HeartbeatStatus }>;
}
