/**
 * The same requests sent to our registry and to CNCF Distribution. Each probe records what a
 * client observes (status, spec error code, selected headers). Where the two registries answer
 * differently, `KNOWN_DIFFERENCES` says why we follow the spec text instead; the comparison test
 * fails on any other difference, so this list stays the truth (the README copies it).
 */
import { randomBytes } from 'node:crypto';
import { pushBlob, pushImage, sha256 } from '../../helpers/registry.js';

export interface Observation {
  /** 0 when the connection broke before a complete response. */
  readonly status: number;
  readonly code?: string;
  readonly headers: Record<string, string>;
}

export interface Probe {
  readonly id: string;
  /** Prepares content (same on both) and performs the request. */
  run(base: string): Promise<Observation>;
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const COMPARED_HEADERS = [
  'content-type',
  'docker-content-digest',
  'content-range',
  'range',
  'oci-subject',
  'link',
];

async function observe(response: Response): Promise<Observation> {
  const text = await response.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { errors?: { code: string }[] }).errors?.[0]?.code;
  } catch {
    code = undefined;
  }
  const headers: Record<string, string> = {};
  for (const name of COMPARED_HEADERS) {
    const value = response.headers.get(name);
    if (value !== null)
      headers[name] = value
        .replace(/[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}/g, '<uuid>')
        .replace(/127\.0\.0\.1:\d+/g, '<host>');
  }
  return code === undefined
    ? { status: response.status, headers }
    : { status: response.status, code, headers };
}

const layer = randomBytes(4096);
const config = Buffer.from('{"architecture":"amd64","os":"linux"}');

export const PROBES: Probe[] = [
  { id: 'GET /v2/', run: async (base) => observe(await fetch(`${base}/v2/`)) },
  {
    id: 'GET unknown blob',
    run: async (base) => observe(await fetch(`${base}/v2/cmp/app/blobs/${sha256('none')}`)),
  },
  {
    id: 'GET manifest in unknown repository',
    run: async (base) => observe(await fetch(`${base}/v2/cmp/none/manifests/latest`)),
  },
  {
    id: 'GET unknown tag in known repository',
    run: async (base) => {
      await pushImage(base, 'cmp/app', 'v1', [layer]);
      return observe(await fetch(`${base}/v2/cmp/app/manifests/nope`));
    },
  },
  {
    id: 'GET tags of unknown repository',
    run: async (base) => observe(await fetch(`${base}/v2/cmp/none/tags/list`)),
  },
  {
    id: 'GET with invalid repository name',
    run: async (base) => observe(await fetch(`${base}/v2/Bad/Name/tags/list`)),
  },
  {
    id: 'GET manifest by tag (OCI)',
    run: async (base) =>
      observe(await fetch(`${base}/v2/cmp/app/manifests/v1`, { headers: { Accept: OCI_MANIFEST } })),
  },
  {
    id: 'GET OCI manifest accepting only Docker schema2',
    run: async (base) =>
      observe(await fetch(`${base}/v2/cmp/app/manifests/v1`, { headers: { Accept: DOCKER_MANIFEST } })),
  },
  {
    id: 'GET blob range',
    run: async (base) =>
      observe(
        await fetch(`${base}/v2/cmp/app/blobs/${sha256(layer)}`, { headers: { Range: 'bytes=10-19' } }),
      ),
  },
  {
    id: 'GET blob range beyond the end',
    run: async (base) =>
      fetch(`${base}/v2/cmp/app/blobs/${sha256(layer)}`, { headers: { Range: 'bytes=99999-' } })
        .then(observe)
        .catch(() => ({ status: 0, headers: {} })),
  },
  {
    id: 'PUT manifest referencing an unknown blob',
    run: async (base) => {
      const manifest = {
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: {
          mediaType: 'application/vnd.oci.image.config.v1+json',
          digest: sha256(config),
          size: config.length,
        },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256('missing'), size: 7 }],
      };
      await pushBlob(base, 'cmp/app', config);
      return observe(
        await fetch(`${base}/v2/cmp/app/manifests/broken`, {
          method: 'PUT',
          headers: { 'Content-Type': OCI_MANIFEST },
          body: JSON.stringify(manifest),
        }),
      );
    },
  },
  {
    id: 'PUT manifest that is not JSON',
    run: async (base) =>
      observe(
        await fetch(`${base}/v2/cmp/app/manifests/broken`, {
          method: 'PUT',
          headers: { 'Content-Type': OCI_MANIFEST },
          body: '{not json',
        }),
      ),
  },
  {
    id: 'PUT manifest with a subject',
    run: async (base) => {
      const subject = await pushImage(base, 'cmp/ref', 'base', [layer]);
      const referrer = await pushImage(base, 'cmp/ref', 'sig', [Buffer.from('sig')], {
        artifactType: 'application/example.sig',
        subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.manifest.length },
      });
      return observe(
        await fetch(`${base}/v2/cmp/ref/manifests/sig2`, {
          method: 'PUT',
          headers: { 'Content-Type': OCI_MANIFEST },
          body: referrer.manifest,
        }),
      );
    },
  },
  {
    id: 'GET referrers',
    run: async (base) => observe(await fetch(`${base}/v2/cmp/app/referrers/${sha256('none')}`)),
  },
  {
    id: 'POST upload, PATCH out of order',
    run: async (base) => {
      const started = await fetch(`${base}/v2/cmp/app/blobs/uploads/`, { method: 'POST' });
      await started.arrayBuffer();
      const location = started.headers.get('location') ?? '';
      const url = location.startsWith('http') ? location : `${base}${location}`;
      return observe(
        await fetch(url, {
          method: 'PATCH',
          headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': '10-19' },
          body: randomBytes(10),
        }),
      );
    },
  },
  {
    id: 'POST upload, PATCH, GET status',
    run: async (base) => {
      const started = await fetch(`${base}/v2/cmp/app/blobs/uploads/`, { method: 'POST' });
      await started.arrayBuffer();
      const first = started.headers.get('location') ?? '';
      const patched = await fetch(first.startsWith('http') ? first : `${base}${first}`, {
        method: 'PATCH',
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': '0-9' },
        body: randomBytes(10),
      });
      await patched.arrayBuffer();
      const next = patched.headers.get('location') ?? '';
      return observe(await fetch(next.startsWith('http') ? next : `${base}${next}`));
    },
  },
  {
    id: 'POST mount from a repository without the blob',
    run: async (base) =>
      observe(
        await fetch(`${base}/v2/cmp/other/blobs/uploads/?mount=${sha256(layer)}&from=cmp/none`, {
          method: 'POST',
        }),
      ),
  },
  {
    id: 'POST mount from a repository with the blob',
    run: async (base) =>
      observe(
        await fetch(`${base}/v2/cmp/other/blobs/uploads/?mount=${sha256(layer)}&from=cmp/app`, {
          method: 'POST',
        }),
      ),
  },
  {
    id: 'GET tags with n=1',
    run: async (base) => {
      await pushImage(base, 'cmp/app', 'v2', [layer]);
      return observe(await fetch(`${base}/v2/cmp/app/tags/list?n=1`));
    },
  },
  {
    id: 'GET tags with n=abc',
    run: async (base) => observe(await fetch(`${base}/v2/cmp/app/tags/list?n=abc`)),
  },
  {
    id: 'DELETE tag',
    run: async (base) => observe(await fetch(`${base}/v2/cmp/app/manifests/v2`, { method: 'DELETE' })),
  },
  {
    id: 'DELETE blob',
    run: async (base) =>
      observe(await fetch(`${base}/v2/cmp/other/blobs/${sha256(layer)}`, { method: 'DELETE' })),
  },
  {
    id: 'DELETE manifest by digest',
    run: async (base) => {
      const image = await pushImage(base, 'cmp/del', 'x', [layer]);
      return observe(await fetch(`${base}/v2/cmp/del/manifests/${image.digest}`, { method: 'DELETE' }));
    },
  },
  { id: 'PUT on /v2/', run: async (base) => observe(await fetch(`${base}/v2/`, { method: 'PUT' })) },
];

/** Probe id -> why we answer differently from Distribution 2.8 (the Debian package). */
export const KNOWN_DIFFERENCES: Record<string, string> = {
  'GET with invalid repository name':
    "Distribution's router does not match the name and answers a plain-text 404; the spec defines NAME_INVALID (400) for an invalid name, and names are validated before anything touches the disk.",
  'GET blob range beyond the end':
    'Distribution sets Content-Length to the blob size, then writes a short error and the connection breaks; we answer 416 with `Content-Range: bytes */<size>` (RFC 9110) and a spec error body.',
  'PUT manifest with a subject':
    'Distribution 2.8 predates OCI 1.1 and ignores `subject`; the spec requires the `OCI-Subject` header when the registry processed the subject (we index it for the referrers API).',
  'GET referrers':
    'Distribution 2.8 has no referrers API (404); the spec requires it, and an unknown subject yields an empty index (200).',
  'POST upload, PATCH out of order':
    'Distribution 2.8 ignores Content-Range and appends the chunk; the spec says a chunk not starting at the current offset MUST get 416.',
  'GET tags with n=1':
    'Distribution 2.8 ignores `n` on tags/list; the spec says the list is limited to n entries with a `Link` header to the next page.',
  'GET tags with n=abc':
    'Distribution ignores a malformed `n`; we answer 400 so the client bug shows (UNSUPPORTED, the spec has no pagination code).',
  'DELETE tag':
    'Distribution 2.8 only deletes by digest (400 DIGEST_INVALID); spec 1.1 allows deleting a tag (202), which removes the tag only.',
  'PUT on /v2/':
    'Distribution answers any method on /v2/ with 200; the spec defines only GET, so other methods get 405 UNSUPPORTED.',
};
