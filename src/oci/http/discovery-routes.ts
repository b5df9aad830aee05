import { OciError } from '../errors.js';
import { parseDigest } from '../domain/names.js';
import { MEDIA_TYPES } from '../domain/manifests.js';
import { send, type RouteContext } from './context.js';

/** `n` of the pagination parameters: a non-negative integer, or absent. */
function pageSize(query: URLSearchParams): number | undefined {
  const n = query.get('n');
  if (n === null || n === '') return undefined;
  if (!/^\d{1,6}$/.test(n)) throw new OciError('PaginationInvalid', undefined, { n });
  return Number(n);
}

function nextLink(path: string, n: number | undefined, last: string | undefined): Record<string, string> {
  if (n === undefined || last === undefined) return {};
  return { Link: `<${path}?n=${n}&last=${encodeURIComponent(last)}>; rel="next"` };
}

/** `GET /v2/<name>/tags/list?n=&last=`. */
export async function listTags(context: RouteContext): Promise<void> {
  const { res, name, query, services } = context;
  const n = pageSize(query);
  const page = await services.content.listTags(name, n, query.get('last') ?? undefined);
  const link = page.more ? nextLink(`/v2/${name}/tags/list`, n, page.items.at(-1)) : {};
  send(res, 200, link, { name, tags: page.items });
}

/** `GET /v2/<name>/referrers/<digest>?artifactType=`. */
export async function listReferrers(context: RouteContext): Promise<void> {
  const { res, name, query, services } = context;
  const subject = parseDigest(context.param);
  const artifactType = query.get('artifactType') ?? undefined;
  const index = await services.content.referrers(name, subject, artifactType);
  send(
    res,
    200,
    {
      'Content-Type': MEDIA_TYPES.ociIndex,
      ...(artifactType === undefined ? {} : { 'OCI-Filters-Applied': 'artifactType' }),
    },
    JSON.stringify(index),
  );
}

/** `GET /v2/_catalog?n=&last=`. */
export async function listRepositories(context: RouteContext): Promise<void> {
  const { res, query, services } = context;
  const n = pageSize(query);
  const page = await services.content.catalog(n, query.get('last') ?? undefined);
  const link = page.more ? nextLink('/v2/_catalog', n, page.items.at(-1)) : {};
  send(res, 200, link, { repositories: page.items });
}
