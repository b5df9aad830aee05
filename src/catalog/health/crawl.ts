import { createHash } from 'node:crypto';
import dns from 'node:dns';
import type { ImagePlatform, ImageReferrers, ProbeTarget } from '../model.js';
import type { AddressPolicy } from './address-policy.js';
import { CrawlClient, CrawlStop, type CrawlClientOptions } from './crawl-client.js';
import { guardedLookup, headerValue, type Answer } from './transport.js';

/**
 * The crawl of one registry (DESIGN.md section 8): `_catalog` (or the configured repositories),
 * `tags/list`, each tag's manifest by `HEAD` then `GET`, and its referrers (the referrers API, then
 * the `sha256-<hex>` fallback tag, and cosign's `.sig`/`.att`/`.sbom` tags). Outbound only: it
 * returns what it saw and what went wrong; the domain layer (domain/images.ts) turns that into
 * records, and only a complete crawl removes anything.
 *
 * Anything a registry answers wrong (a refused URL, malformed JSON, a manifest over the cap, a
 * `Link` to another origin, a loop) is an error of the report, never an exception.
 */

export interface CrawlSettings {
  /** `container_registry_config.crawl.repositories`: names, or prefixes ending in `/` or `*`. */
  readonly repositories?: readonly string[];
  readonly maxManifestBytes: number;
  /**
   * What the index already holds of a repository, by tag: a tag whose `HEAD` digest is the
   * known one keeps its known facts (no `GET` of the manifest, its children, config or
   * referrers); a tag not known is read with one `GET`, without a `HEAD` first.
   */
  readonly known?: (repository: string) => Promise<ReadonlyMap<string, KnownTag>>;
  /**
   * Known referrer counts older than this are read again even when the digest is unchanged
   * (referrers attach to a digest without changing it, so `HEAD` cannot tell). Default 1 h.
   */
  readonly referrersMaxAgeMs?: number;
}

/** A tag as the index holds it (see `CrawlSettings.known`). */
export interface KnownTag {
  readonly digest: string;
  readonly media_type: string;
  readonly platforms: ImagePlatform[];
  readonly size: number;
  readonly referrers: ImageReferrers;
  /** When its referrers were last read from the registry (ISO 8601); absent: never. */
  readonly referrers_read_at?: string;
}

/** One tag as the registry holds it. */
export interface CrawledTag {
  readonly repository: string;
  readonly tag: string;
  readonly digest: string;
  readonly media_type: string;
  readonly platforms: ImagePlatform[];
  readonly size: number;
  readonly referrers: ImageReferrers;
  /** When `referrers` were read from the registry (ISO 8601): now, or kept from the known tag. */
  readonly referrers_read_at: string;
}

export interface CrawlOutcome {
  readonly images: CrawledTag[];
  readonly repositories: number;
  readonly tags: number;
  readonly requests: number;
  readonly errors: string[];
  readonly complete: boolean;
}

const PAGE_SIZE = 1000;
const REFERRERS_MAX_AGE_MS = 3_600_000;
const LIST_BODY_BYTES = 4 * 1024 * 1024;
const MAX_ERRORS = 100;
const MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');
const INDEX_TYPES = new Set([
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);
/** cosign's tags: `sha256-<hex>.sig|.att|.sbom`; the referrers fallback tag: `sha256-<hex>`. */
const ARTIFACT_TAG = /^(sha256)-([a-f0-9]{64})(?:\.(sig|att|sbom))?$/;

export async function crawlRegistry(
  base: URL,
  settings: CrawlSettings,
  options: CrawlClientOptions,
): Promise<CrawlOutcome> {
  const client = new CrawlClient(base, options);
  try {
    return await crawlWith(client, settings);
  } finally {
    client.close();
  }
}

async function crawlWith(client: CrawlClient, settings: CrawlSettings): Promise<CrawlOutcome> {
  const errors: string[] = [];
  const fail = (message: string) => {
    if (errors.length < MAX_ERRORS) errors.push(message);
    else if (errors.length === MAX_ERRORS) errors.push('more errors not listed');
  };
  let stopped = false;
  const guard = async <T>(what: string, task: () => Promise<T>): Promise<T | undefined> => {
    if (stopped) return undefined;
    try {
      return await task();
    } catch (error) {
      if (error instanceof CrawlStop) {
        if (!stopped) fail(error.message);
        stopped = true;
      } else fail(`${what}: ${describe(error)}`);
      return undefined;
    }
  };

  const repositories = (await guard('_catalog', () => listRepositories(client, settings, fail))) ?? [];
  const images: CrawledTag[] = [];
  let tagCount = 0;
  await Promise.all(
    repositories.map(async (repository) => {
      const tags = await guard(`${repository} tags`, () =>
        listPaged(client, `v2/${repository}/tags/list`, 'tags', `repository:${repository}:pull`, fail),
      );
      if (!tags) return;
      const imageTags = tags.filter((tag) => !ARTIFACT_TAG.test(tag));
      const artifactTags = tags.filter((tag) => ARTIFACT_TAG.test(tag));
      tagCount += imageTags.length;
      const known =
        (settings.known && (await guard(`${repository} known tags`, () => settings.known!(repository)))) ??
        new Map<string, KnownTag>();
      const manifests = new Map<string, Promise<ManifestFacts | undefined>>();
      const read = await Promise.all(
        imageTags.map(async (tag) => {
          const facts = await guard(`${repository}:${tag}`, () =>
            readTag(client, repository, tag, settings.maxManifestBytes, manifests, fail, known.get(tag)),
          );
          return facts && { tag, facts };
        }),
      );
      const now = Date.now();
      const maxAgeMs = settings.referrersMaxAgeMs ?? REFERRERS_MAX_AGE_MS;
      const referrers = new Map<string, Promise<{ referrers: ImageReferrers; referrers_read_at: string }>>();
      for (const entry of read) {
        if (!entry) continue;
        const { known: kept, ...facts } = entry.facts;
        const { digest } = facts;
        const readAt = kept?.referrers_read_at ? Date.parse(kept.referrers_read_at) : NaN;
        if (kept && now - readAt < maxAgeMs) {
          // Unchanged digest, counts read recently: kept without a request.
          const { referrers: counts, referrers_read_at } = kept as Required<KnownTag>;
          images.push({ repository, tag: entry.tag, ...facts, referrers: counts, referrers_read_at });
          continue;
        }
        if (!referrers.has(digest))
          referrers.set(
            digest,
            guard(`${repository}@${digest} referrers`, () =>
              readReferrers(client, repository, digest, artifactTags, settings.maxManifestBytes, fail),
            ).then((found) => ({
              referrers: found ?? emptyReferrers(),
              referrers_read_at: new Date(now).toISOString(),
            })),
          );
        images.push({ repository, tag: entry.tag, ...facts, ...(await referrers.get(digest)!) });
      }
    }),
  );
  return {
    images,
    repositories: repositories.length,
    tags: tagCount,
    requests: client.requests,
    errors,
    complete: errors.length === 0 && !stopped,
  };
}

/** The configured names, `_catalog` filtered by configured prefixes, or all of `_catalog`. */
async function listRepositories(
  client: CrawlClient,
  settings: CrawlSettings,
  fail: (message: string) => void,
): Promise<string[]> {
  const configured = settings.repositories ?? [];
  const names = configured.filter((entry) => !entry.endsWith('/') && !entry.endsWith('*'));
  const prefixes = configured
    .filter((entry) => entry.endsWith('/') || entry.endsWith('*'))
    .map((entry) => entry.replace(/\*$/, ''));
  if (configured.length > 0 && prefixes.length === 0) return [...new Set(names)].sort();
  let listed: string[];
  try {
    listed = await listPaged(client, 'v2/_catalog', 'repositories', 'registry:catalog:*', fail);
  } catch (error) {
    if (error instanceof RefusedListing && names.length > 0) {
      // Many registries refuse `_catalog`: the configured names are then all there is to list.
      fail(`${error.message}; the prefixes ${prefixes.join(', ')} cannot be expanded`);
      return [...new Set(names)].sort();
    }
    throw error;
  }
  const wanted =
    prefixes.length === 0 ? listed : listed.filter((name) => prefixes.some((p) => name.startsWith(p)));
  return [...new Set([...names, ...wanted])].sort();
}

class RefusedListing extends Error {
  override name = 'RefusedListing';
}

/**
 * A paged listing (`_catalog` or `tags/list`): `?n=1000`, following `Link` on the same origin
 * only. A full page without `Link` is continued with `?last=` (registries that drop `Link`
 * half-way); a page seen twice is a loop and stops the listing.
 */
async function listPaged(
  client: CrawlClient,
  path: string,
  member: 'repositories' | 'tags',
  scope: string,
  fail: (message: string) => void,
): Promise<string[]> {
  const all: string[] = [];
  const seenUrls = new Set<string>();
  let url: URL | undefined = new URL(`${path}?n=${PAGE_SIZE}`, client.base);
  while (url) {
    if (seenUrls.has(url.href)) throw new Error(`${path} loops (${url.pathname}${url.search} again)`);
    seenUrls.add(url.href);
    const answer = await client.request(url, scope, { maxBodyBytes: LIST_BODY_BYTES });
    if (answer.status === 404 && member === 'tags') return [];
    if (answer.status !== 200) throw new RefusedListing(`${path} answered ${answer.status}`);
    const page = parseJson(answer, path) as Record<string, unknown> | null;
    const entries = page?.[member] ?? [];
    if (!Array.isArray(entries) || !entries.every((entry) => typeof entry === 'string'))
      throw new Error(`${path} is not a listing (${member} is not a list of strings)`);
    all.push(...entries);
    const link = nextLink(headerValue(answer.headers.link), answer.url);
    if (link && link.origin !== client.origin) {
      fail(`${path}: Link to another origin (${link.origin}) refused`);
      throw new CrawlStop(`${path} listing stopped at a Link to another origin`);
    }
    const last = entries.at(-1);
    url =
      link ??
      (entries.length >= PAGE_SIZE && last !== undefined
        ? new URL(`${path}?n=${PAGE_SIZE}&last=${encodeURIComponent(last)}`, client.base)
        : undefined);
  }
  return all;
}

/** The `rel="next"` target of a `Link` header, resolved against the answer's URL. */
function nextLink(header: string | undefined, at: URL): URL | undefined {
  if (!header) return undefined;
  for (const part of header.split(/,(?=\s*<)/)) {
    const match = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (match && /rel="?next"?/i.test(match[2]!)) {
      try {
        return new URL(match[1]!, at);
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

interface ManifestFacts {
  readonly digest: string;
  readonly media_type: string;
  readonly platforms: ImagePlatform[];
  readonly size: number;
  /** Set when the facts are the known tag's (its digest is unchanged). */
  readonly known?: KnownTag;
}

/**
 * A tag's manifest facts. Known tag: `HEAD` for its digest, and the known facts when it is
 * unchanged, else the manifest by digest (once per digest and repository). Unknown tag: one `GET`
 * by tag (the digest comes with it).
 */
async function readTag(
  client: CrawlClient,
  repository: string,
  tag: string,
  maxBytes: number,
  manifests: Map<string, Promise<ManifestFacts | undefined>>,
  fail: (message: string) => void,
  known: KnownTag | undefined,
): Promise<ManifestFacts | undefined> {
  const scope = `repository:${repository}:pull`;
  const reading = (reference: string) =>
    readManifest(client, repository, reference, maxBytes, fail, true).catch((error: unknown) => {
      if (error instanceof CrawlStop) throw error;
      fail(`${repository}:${tag}: ${describe(error)}`);
      return undefined;
    });
  if (!known) return reading(encodeURIComponent(tag));
  const head = await client.request(`v2/${repository}/manifests/${encodeURIComponent(tag)}`, scope, {
    method: 'HEAD',
    accept: MANIFEST_TYPES,
    maxBodyBytes: 0,
  });
  if (head.status !== 200) throw new Error(`HEAD manifest answered ${head.status}`);
  const length = Number(headerValue(head.headers['content-length']));
  if (Number.isFinite(length) && length > maxBytes)
    throw new Error(`manifest of ${length} bytes is over the cap of ${maxBytes}, skipped`);
  const digest = headerValue(head.headers['docker-content-digest']);
  if (digest === known.digest) {
    const { digest: _, referrers: __, referrers_read_at: ___, ...facts } = known;
    return { digest, ...facts, known };
  }
  const reference = digest && /^sha256:[a-f0-9]{64}$/.test(digest) ? digest : encodeURIComponent(tag);
  const key = digest ?? `tag:${tag}`;
  if (!manifests.has(key)) manifests.set(key, reading(reference));
  return manifests.get(key)!;
}

/** `GET` of one manifest: its digest, media type, platforms and size (children of an index read once). */
async function readManifest(
  client: CrawlClient,
  repository: string,
  reference: string,
  maxBytes: number,
  fail: (message: string) => void,
  followChildren: boolean,
): Promise<ManifestFacts | undefined> {
  const scope = `repository:${repository}:pull`;
  const answer = await client.request(`v2/${repository}/manifests/${reference}`, scope, {
    accept: MANIFEST_TYPES,
    maxBodyBytes: maxBytes + 1,
  });
  if (answer.status !== 200) throw new Error(`GET manifest ${reference} answered ${answer.status}`);
  if (
    Buffer.byteLength(answer.body) > maxBytes ||
    Number(headerValue(answer.headers['content-length'])) > maxBytes
  )
    throw new Error(`manifest ${reference} is over the cap of ${maxBytes} bytes, skipped`);
  const manifest = parseJson(answer, `manifest ${reference}`) as Record<string, unknown> | null;
  if (manifest === null || typeof manifest !== 'object')
    throw new Error(`manifest ${reference} is not an object`);
  const computed = `sha256:${createHash('sha256').update(answer.body).digest('hex')}`;
  const stated = headerValue(answer.headers['docker-content-digest']);
  const digest = reference.startsWith('sha256:') ? reference : (stated ?? computed);
  if (digest !== computed) throw new Error(`manifest ${reference} does not match its digest`);
  const mediaType =
    (typeof manifest.mediaType === 'string' ? manifest.mediaType : undefined) ??
    headerValue(answer.headers['content-type'])?.split(';')[0]?.trim() ??
    'application/octet-stream';
  if (INDEX_TYPES.has(mediaType) || Array.isArray(manifest.manifests)) {
    const children = descriptors(manifest.manifests);
    const platforms: ImagePlatform[] = [];
    let size = 0;
    for (const child of children) {
      const platform = child.platform as Record<string, unknown> | undefined;
      if (platform && typeof platform.os === 'string' && typeof platform.architecture === 'string')
        platforms.push({
          os: platform.os,
          architecture: platform.architecture,
          ...(typeof platform.variant === 'string' ? { variant: platform.variant } : {}),
          digest: child.digest,
        });
    }
    if (followChildren) {
      const sizes = await Promise.all(
        children.map((child) =>
          readManifest(client, repository, child.digest, maxBytes, fail, false).catch((error: unknown) => {
            if (error instanceof CrawlStop) throw error;
            fail(`${repository}@${child.digest}: ${describe(error)}`);
            return undefined;
          }),
        ),
      );
      for (const facts of sizes) size += facts?.size ?? 0;
    }
    return { digest, media_type: mediaType, platforms, size };
  }
  const config = descriptors([manifest.config])[0];
  const layers = descriptors(manifest.layers);
  const size = (config?.size ?? 0) + layers.reduce((sum, layer) => sum + layer.size, 0);
  const platforms: ImagePlatform[] = [];
  if (config && /image\.config|container\.image/.test(config.mediaType) && followChildren) {
    // Content-addressed: one read per config digest and crawl, whatever the repository.
    let platformRead = client.configs.get(config.digest);
    if (!platformRead) {
      platformRead = readConfigPlatform(client, repository, config.digest);
      client.configs.set(config.digest, platformRead);
    }
    const platform = await platformRead;
    if (platform) platforms.push({ ...platform, digest });
  }
  return { digest, media_type: mediaType, platforms, size };
}

/** `os`/`architecture`/`variant` of an image's config blob (small: capped at 64 KiB). */
async function readConfigPlatform(
  client: CrawlClient,
  repository: string,
  digest: string,
): Promise<Omit<ImagePlatform, 'digest'> | undefined> {
  const answer = await client.request(`v2/${repository}/blobs/${digest}`, `repository:${repository}:pull`, {
    maxBodyBytes: 64 * 1024,
  });
  if (answer.status !== 200) return undefined;
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(answer.body) as Record<string, unknown>;
  } catch {
    return undefined; // a config over 64 KiB or not JSON: the platform stays unknown
  }
  if (typeof config?.os !== 'string' || typeof config.architecture !== 'string') return undefined;
  return {
    os: config.os,
    architecture: config.architecture,
    ...(typeof config.variant === 'string' ? { variant: config.variant } : {}),
  };
}

interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly artifactType?: string;
  readonly platform?: unknown;
}

/** The well-formed descriptors of a list (anything else is ignored). */
function descriptors(list: unknown): Descriptor[] {
  if (!Array.isArray(list)) return [];
  return list.filter(
    (entry): entry is Descriptor =>
      typeof entry === 'object' &&
      entry !== null &&
      typeof (entry as Descriptor).digest === 'string' &&
      /^sha256:[a-f0-9]{64}$/.test((entry as Descriptor).digest) &&
      typeof (entry as Descriptor).size === 'number' &&
      (entry as Descriptor).size >= 0 &&
      typeof (entry as Descriptor).mediaType === 'string',
  );
}

/** Referrers of `digest`: the referrers API, else the fallback tag; plus cosign's tags. */
async function readReferrers(
  client: CrawlClient,
  repository: string,
  digest: string,
  artifactTags: readonly string[],
  maxBytes: number,
  fail: (message: string) => void,
): Promise<ImageReferrers> {
  const referrers = emptyReferrers();
  const hex = digest.slice('sha256:'.length);
  const scope = `repository:${repository}:pull`;
  const answer = await client.request(`v2/${repository}/referrers/${digest}`, scope, {
    accept: 'application/vnd.oci.image.index.v1+json',
    maxBodyBytes: maxBytes + 1,
  });
  let index: Record<string, unknown> | null = null;
  const isIndex = (value: unknown) =>
    typeof value === 'object' &&
    value !== null &&
    Array.isArray((value as Record<string, unknown>).manifests);
  if (answer.status === 200) {
    const parsed = parseJson(answer, `referrers of ${repository}@${digest}`);
    if (isIndex(parsed)) index = parsed as Record<string, unknown>;
  }
  if (!index && artifactTags.includes(`sha256-${hex}`)) {
    // No referrers API (Distribution 2.x): the OCI fallback tag holds the same index.
    const fallback = await client.request(`v2/${repository}/manifests/sha256-${hex}`, scope, {
      accept: 'application/vnd.oci.image.index.v1+json',
      maxBodyBytes: maxBytes + 1,
    });
    if (fallback.status === 200) {
      const parsed = parseJson(fallback, `fallback tag sha256-${hex}`);
      if (isIndex(parsed)) index = parsed as Record<string, unknown>;
      else fail(`${repository}: fallback tag sha256-${hex} is not an index`);
    }
  }
  for (const descriptor of descriptors(index?.manifests)) {
    count(referrers, descriptor.artifactType ?? descriptor.mediaType);
  }
  // cosign's tag scheme, beside or instead of referrers.
  if (artifactTags.includes(`sha256-${hex}.sig`)) count(referrers, COSIGN_TAG_TYPES.sig);
  if (artifactTags.includes(`sha256-${hex}.att`)) count(referrers, COSIGN_TAG_TYPES.att);
  if (artifactTags.includes(`sha256-${hex}.sbom`)) count(referrers, COSIGN_TAG_TYPES.sbom);
  return referrers;
}

const COSIGN_TAG_TYPES = {
  sig: 'application/vnd.dev.cosign.simplesigning.v1+json',
  att: 'application/vnd.dsse.envelope.v1+json',
  sbom: 'application/spdx+json',
} as const;

/** Which kind of referrer an artifact type is: signature, SBOM, attestation, or other. */
export function referrerKind(artifactType: string): 'signatures' | 'sboms' | 'attestations' | 'other' {
  const type = artifactType.toLowerCase();
  if (/cosign\.artifact\.sig|simplesigning|notary\.signature|sigstore\.bundle|signature/.test(type))
    return 'signatures';
  if (/spdx|cyclonedx|sbom|syft/.test(type)) return 'sboms';
  if (/in-toto|intoto|dsse|attestation|provenance|slsa|vuln/.test(type)) return 'attestations';
  return 'other';
}

function count(referrers: ImageReferrers, artifactType: string): void {
  referrers[referrerKind(artifactType)]++;
  if (!referrers.artifact_types.includes(artifactType) && referrers.artifact_types.length < 32)
    referrers.artifact_types.push(artifactType);
}

export function emptyReferrers(): ImageReferrers {
  return { signatures: 0, sboms: 0, attestations: 0, other: 0, artifact_types: [] };
}

function parseJson(answer: Answer, what: string): unknown {
  try {
    return JSON.parse(answer.body);
  } catch {
    throw new Error(`${what} is not valid JSON`);
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code && !error.message.includes(code) ? `${error.message} (${code})` : error.message;
  }
  return String(error);
}

/** The limits of every crawl (jobs/crawl-config.ts). */
export interface CrawlerLimits {
  readonly concurrencyPerRegistry: number;
  readonly requestBudget: number;
  readonly timeoutMs: number;
  readonly maxManifestBytes: number;
  readonly maxRetryAfterMs: number;
  /** Timeout of one request unless the registry sets `health_check_timeout_ms`. */
  readonly requestTimeoutMs: number;
  /** See `CrawlSettings.referrersMaxAgeMs` (default 1 h). */
  readonly referrersMaxAgeMs?: number;
}

/**
 * Builds the crawl of one registry target, through the probe's address policy and DNS guard,
 * as `createProber` builds the probe.
 */
export function createCrawler(deps: {
  policy: AddressPolicy;
  lookup?: typeof dns.lookup;
  limits: CrawlerLimits;
}): (
  target: ProbeTarget,
  settings: Omit<CrawlSettings, 'maxManifestBytes' | 'referrersMaxAgeMs'>,
) => Promise<CrawlOutcome> {
  const lookup = guardedLookup(deps.policy, deps.lookup ?? dns.lookup);
  const { limits } = deps;
  return async (target, settings) => {
    let base: URL;
    try {
      base = new URL(target.url.endsWith('/') ? target.url : `${target.url}/`);
    } catch {
      return {
        images: [],
        repositories: 0,
        tags: 0,
        requests: 0,
        errors: ['the public URL is not a valid URL'],
        complete: false,
      };
    }
    return crawlRegistry(
      base,
      {
        ...settings,
        maxManifestBytes: limits.maxManifestBytes,
        referrersMaxAgeMs: limits.referrersMaxAgeMs,
      },
      {
        target,
        lookup,
        policy: deps.policy,
        concurrency: limits.concurrencyPerRegistry,
        requestBudget: limits.requestBudget,
        deadline: AbortSignal.timeout(limits.timeoutMs),
        requestTimeoutMs: target.timeoutMs ?? limits.requestTimeoutMs,
        maxRetryAfterMs: limits.maxRetryAfterMs,
      },
    );
  };
}
