import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { Response } from 'supertest';
import { SchemaSet, isRegistryUrl } from '../../src/shared/schemas.js';
import { bundleOpenApi } from '../../src/catalog/http/openapi.js';

const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

type Json = Record<string, unknown>;

/**
 * Checks responses against the served OpenAPI description: the path and method must be
 * documented, the status must be listed for that operation, the media type must match and the
 * body must validate against the documented schema. API tests run every response through it,
 * so the description and the routes cannot drift apart unnoticed.
 */
export class OpenApiValidator {
  readonly doc: Json;
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true });
  private readonly compiled = new Map<string, ValidateFunction>();
  private readonly templates: Array<{ template: string; regex: RegExp }>;

  constructor(schemas = new SchemaSet()) {
    this.doc = bundleOpenApi(schemas);
    addFormats(this.ajv);
    this.ajv.addFormat('registry-url', { type: 'string', validate: isRegistryUrl });
    this.templates = Object.keys(this.doc.paths as Json).map((template) => ({
      template,
      regex: new RegExp(
        `^${template.replace(/[.*+?^${}()|[\]\\]/g, (c) => (c === '{' || c === '}' ? c : `\\${c}`)).replace(/\{[^}]+\}/g, '[^/]+')}$`,
      ),
    }));
  }

  /** Throws with a readable message when `res` does not match the description. */
  check(method: string, url: string, res: Response): void {
    const path = new URL(url, 'http://x').pathname;
    const match = this.templates.find(({ regex }) => regex.test(path));
    if (!match) {
      if (res.status === 404 && res.body?.success === false) return; // unknown routes answer the documented envelope
      throw new Error(`${method} ${path} is not in openapi.yaml`);
    }
    const operation = (this.doc.paths as Record<string, Json>)[match.template]?.[method.toLowerCase()] as
      Json | undefined;
    if (!operation) {
      if (res.status === 405 && res.body?.success === false && res.headers.allow) return;
      throw new Error(`${method} ${match.template} is not in openapi.yaml`);
    }
    let response = (operation.responses as Json)[String(res.status)] as Json | undefined;
    if (!response)
      throw new Error(`${method} ${match.template} answered ${res.status}, which openapi.yaml does not list`);
    if (typeof response.$ref === 'string') response = this.resolve(response.$ref);
    const content = response.content as Record<string, { schema: Json }> | undefined;
    if (!content) {
      if (res.text)
        throw new Error(`${method} ${match.template} ${res.status} has a body but none is documented`);
      return;
    }
    const mediaType = String(res.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim();
    const documented = content[mediaType];
    if (!documented) {
      throw new Error(
        `${method} ${match.template} ${res.status} answered ${mediaType}, documented: ${Object.keys(content).join(', ')}`,
      );
    }
    if (!mediaType.endsWith('json')) return;
    const key = `${match.template} ${method} ${res.status} ${mediaType}`;
    let validate = this.compiled.get(key);
    if (!validate) {
      validate = this.ajv.compile({ ...documented.schema, components: this.doc.components });
      this.compiled.set(key, validate);
    }
    const body = res.body && Object.keys(res.body).length > 0 ? res.body : JSON.parse(res.text || 'null');
    if (!validate(body)) {
      throw new Error(
        `${method} ${match.template} ${res.status} body does not match openapi.yaml: ${this.ajv.errorsText(validate.errors)}\n${res.text.slice(0, 500)}`,
      );
    }
  }

  private resolve(ref: string): Json {
    return ref
      .slice(2)
      .split('/')
      .reduce<Json>((node, segment) => node[segment] as Json, this.doc);
  }
}
