import request, { type Response } from 'supertest';
import type { RequestListener } from 'node:http';
import type { OpenApiValidator } from './openapi-validator.js';

export interface CallOptions {
  headers?: Record<string, string>;
  /** A raw body sent as is (with `contentType`), instead of JSON. */
  raw?: string;
  contentType?: string;
}

/** supertest with every response checked against openapi.yaml. */
export class ApiClient {
  constructor(
    /** The catalog's request handler: the fast read path in front of the Express app. */
    readonly handler: RequestListener,
    private readonly validator: OpenApiValidator,
  ) {}

  async call(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH',
    url: string,
    body?: unknown,
    options: CallOptions = {},
  ): Promise<Response> {
    let test = request(this.handler)[method.toLowerCase() as 'get'](url);
    for (const [name, value] of Object.entries(options.headers ?? {})) test = test.set(name, value);
    if (options.raw !== undefined) {
      if (options.contentType) test = test.set('Content-Type', options.contentType);
      test = test.send(options.raw);
    } else if (body !== undefined) {
      test = test.send(body as object);
    }
    const res = await test;
    this.validator.check(method, url, res);
    return res;
  }

  get(url: string, options?: CallOptions) {
    return this.call('GET', url, undefined, options);
  }
  post(url: string, body?: unknown, options?: CallOptions) {
    return this.call('POST', url, body, options);
  }
  put(url: string, body?: unknown, options?: CallOptions) {
    return this.call('PUT', url, body, options);
  }
  delete(url: string, options?: CallOptions) {
    return this.call('DELETE', url, undefined, options);
  }
}
