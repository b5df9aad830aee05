import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import type { SchemaSet } from '../../shared/schemas.js';

/** openapi.yaml at the repository root (beside schemas/). */
export const OPENAPI_PATH = path.resolve(
  path.dirname(path.dirname(path.dirname(fileURLToPath(import.meta.url)))),
  '..',
  'openapi.yaml',
);

type Json = unknown;

/**
 * Builds the served OpenAPI document: openapi.yaml with every `$ref` into `schemas/*.json`
 * replaced by a local `#/components/schemas/...` reference, and each schema (and each of its
 * `$defs`) copied into `components.schemas`. The schema files stay the single source of truth.
 */
export function bundleOpenApi(schemas: SchemaSet, file: string = OPENAPI_PATH): Record<string, Json> {
  const doc = parse(readFileSync(file, 'utf8')) as Record<string, Json>;
  const names = new Map<string, string>();
  for (const [fileName, schema] of schemas.documents) names.set(fileName, String(schema.title ?? fileName));

  const components = (doc.components ??= {}) as Record<string, Json>;
  const target = (components.schemas ??= {}) as Record<string, Json>;

  /** Rewrites a reference found inside `fromFile` (or openapi.yaml when undefined). */
  const rewrite = (ref: string, fromFile: string | undefined): string => {
    const [location = '', fragment = ''] = ref.split('#');
    const fileName = location === '' ? fromFile : path.basename(location);
    if (fileName === undefined || !names.has(fileName)) return ref;
    const name = names.get(fileName)!;
    const defs = /^\/\$defs\/([^/]+)(.*)$/.exec(fragment);
    if (defs) return `#/components/schemas/${name}_${defs[1]}${defs[2]}`;
    return `#/components/schemas/${name}${fragment}`;
  };

  const walk = (node: Json, fromFile: string | undefined): Json => {
    if (Array.isArray(node)) return node.map((item) => walk(item, fromFile));
    if (typeof node !== 'object' || node === null) return node;
    const out: Record<string, Json> = {};
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref' && typeof value === 'string') out[key] = rewrite(value, fromFile);
      else if (fromFile !== undefined && (key === '$id' || key === '$schema' || key === '$defs')) continue;
      else out[key] = walk(value, fromFile);
    }
    return out;
  };

  for (const [fileName, schema] of schemas.documents) {
    const name = names.get(fileName)!;
    target[name] = walk(schema, fileName);
    for (const [def, sub] of Object.entries((schema.$defs ?? {}) as Record<string, Json>)) {
      target[`${name}_${def}`] = walk(sub, fileName);
    }
  }
  const { components: _components, ...rest } = doc;
  return { ...(walk(rest, undefined) as Record<string, Json>), components: walk(components, undefined) };
}

/** The paths an OpenAPI document describes, as Express route templates (`{id}` becomes `:id`). */
export function routeTemplates(doc: Record<string, Json>): string[] {
  return Object.keys((doc.paths ?? {}) as Record<string, Json>).map((path) =>
    path.replace(/\{([^}]+)\}/g, ':$1'),
  );
}
