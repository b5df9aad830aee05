import type { Request, RequestHandler, Response } from 'express';
import { loadUiBundle, type UiFile } from '../ui/bundle.js';

/**
 * `/ui`: the dashboard (README, "Dashboard"). The page itself holds no data and is public, so a
 * browser can load it before it has a token; everything it shows comes from the JSON API, with
 * the token the person signs in with. Versioned files are cached for a year; the page is
 * revalidated each time, so a new release is picked up on the next load.
 */
export const dashboard = (): RequestHandler => {
  const bundle = loadUiBundle();
  const prefix = `/static/${bundle.version}/`;
  return function dashboard(req, res, next) {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    if (req.path === '/') {
      // `/ui` without the slash would resolve the page's relative URLs against `/`.
      if (!req.originalUrl.split('?')[0]!.endsWith('/')) return res.redirect(301, 'ui/');
      return send(req, res, bundle.page, 'no-cache');
    }
    const found = req.path.startsWith(prefix) ? bundle.files.get(req.path.slice(prefix.length)) : undefined;
    if (!found) return next();
    send(req, res, found, 'public, max-age=31536000, immutable');
  };
};

function send(req: Request, res: Response, file: UiFile, cacheControl: string): void {
  const gzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
  res.set({ 'Content-Type': file.type, 'Cache-Control': cacheControl, Vary: 'Accept-Encoding' });
  if (gzip) res.set('Content-Encoding', 'gzip');
  res.end(req.method === 'HEAD' ? undefined : gzip ? file.gzip : file.body);
}
