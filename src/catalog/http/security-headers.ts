import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet from 'helmet';

/**
 * helmet's security headers, computed once. helmet's headers do not depend on the request (no
 * CSP nonces here), so they are collected from one run of its middleware and then written as a
 * plain header object: by Express for its routes, and inside `writeHead` by the fast read path
 * and the access gate, where a `setHeader` call would halve throughput (see front.ts).
 */
export function securityHeaders(): Readonly<Record<string, string>> {
  const headers: Record<string, string> = {};
  const collector = {
    setHeader: (name: string, value: string) => void (headers[name.toLowerCase()] = value),
    removeHeader: (name: string) => void delete headers[name.toLowerCase()],
  };
  helmet({
    contentSecurityPolicy: {
      // /docs is served over plain HTTP inside clusters; upgrading its assets to https breaks it.
      directives: { upgradeInsecureRequests: null },
    },
  })({} as IncomingMessage, collector as unknown as ServerResponse, () => {});
  return Object.freeze(headers);
}
