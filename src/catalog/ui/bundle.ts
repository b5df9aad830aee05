import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

/**
 * The dashboard's files, read once at start: our own (src/catalog/ui/assets/, plain ES modules
 * and CSS, no build step) and the two libraries they import, taken from their npm packages
 * (Preact and htm). Nothing comes from a CDN and nothing is inlined into the page, so helmet's
 * CSP (`script-src 'self'`) stays as it is.
 */

/**
 * Where our files are. The path is taken from the repository (or image) root, three levels up
 * from this module both as src/catalog/ui/bundle.ts and as dist/catalog/ui/bundle.js, because
 * tsc does not copy them into dist/ (the Dockerfile copies the folder beside dist/, as it
 * does for openapi.yaml and schemas/).
 */
export const UI_ASSETS_DIR = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  'src',
  'catalog',
  'ui',
  'assets',
);

/** One file as served: its bytes, gzipped bytes and media type. */
export interface UiFile {
  readonly body: Buffer;
  readonly gzip: Buffer;
  readonly type: string;
}

/** The dashboard: its page and the files under `static/<version>/`. */
export interface UiBundle {
  /** A hash of every file: a new release gets new URLs, so files can be cached for good. */
  readonly version: string;
  /** `index.html` with the versioned asset folder filled in. */
  readonly page: UiFile;
  /** `app/<name>` (ours) and `vendor/<name>` (npm packages). */
  readonly files: ReadonlyMap<string, UiFile>;
}

const TYPES: Readonly<Record<string, string>> = {
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.html': 'text/html; charset=utf-8',
};

/** The library files the browser imports, by the name our modules import them as (`../vendor/<name>`). */
function vendorFiles(): Record<string, string> {
  const require = createRequire(import.meta.url);
  return {
    // Preact's own ES build (`exports["."]`), and htm's ES build beside its CommonJS entry.
    'preact.mjs': require.resolve('preact'),
    'htm.mjs': path.join(path.dirname(require.resolve('htm')), 'htm.mjs'),
  };
}

function file(name: string, body: Buffer): UiFile {
  return {
    body,
    gzip: gzipSync(body, { level: 9 }),
    type: TYPES[path.extname(name)] ?? 'application/octet-stream',
  };
}

/** Reads the dashboard's files (throws at start when one is missing, not on the first request). */
export function loadUiBundle(dir: string = UI_ASSETS_DIR): UiBundle {
  const sources = new Map<string, Buffer>();
  for (const name of readdirSync(dir).sort()) {
    if (name === 'index.html' || !(path.extname(name) in TYPES)) continue;
    sources.set(`app/${name}`, readFileSync(path.join(dir, name)));
  }
  for (const [name, location] of Object.entries(vendorFiles()))
    sources.set(`vendor/${name}`, readFileSync(location));
  const template = readFileSync(path.join(dir, 'index.html'), 'utf8');
  const hash = createHash('sha256').update(template);
  for (const [name, body] of sources) hash.update(name).update(body);
  const version = hash.digest('hex').slice(0, 16);
  const files = new Map([...sources].map(([name, body]) => [name, file(name, body)] as const));
  // Every module is announced in the page, so the browser fetches them at once instead of
  // discovering them import by import (one round trip instead of three).
  const preload = [...files.keys()]
    .filter((name) => name.endsWith('.js') || name.endsWith('.mjs'))
    .map((name) => `<link rel="modulepreload" href="static/${version}/${name}" />`)
    .join('\n    ');
  const page = file(
    'index.html',
    Buffer.from(template.replace('{{modulepreload}}', preload).replaceAll('{{static}}', `static/${version}`)),
  );
  return { version, page, files };
}
