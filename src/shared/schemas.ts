import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

// ajv-formats is CommonJS; under NodeNext its default export is the module object.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

/** `schemas/` at the repository root, both from src/shared (tsx) and dist/shared (built). */
export const SCHEMAS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'schemas');

/** One validation failure: a JSON pointer into the checked value and a readable message. */
export interface SchemaIssue {
  readonly pointer: string;
  readonly message: string;
}

/**
 * Every JSON Schema in `schemas/`, compiled once by one Ajv instance. Schemas reference each
 * other by their `$id` file names, exactly as openapi.yaml does.
 */
export class SchemaSet {
  readonly ajv: Ajv2020;
  readonly documents: ReadonlyMap<string, Record<string, unknown>>;

  constructor(dir: string = SCHEMAS_DIR) {
    this.ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true });
    addFormats(this.ajv);
    this.ajv.addFormat('registry-url', { type: 'string', validate: isRegistryUrl });
    const documents = new Map<string, Record<string, unknown>>();
    for (const file of readdirSync(dir).filter((name) => name.endsWith('.schema.json'))) {
      const schema = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as Record<string, unknown>;
      documents.set(file, schema);
      this.ajv.addSchema(schema);
    }
    this.documents = documents;
  }

  /** The compiled validator of `schemas/<file>`, optionally of a `#/$defs/...` fragment. */
  validator(file: string, fragment = ''): ValidateFunction {
    const schema = this.documents.get(file);
    if (!schema) throw new Error(`no schema ${file} in ${SCHEMAS_DIR}`);
    const validate = this.ajv.getSchema(`${String(schema.$id)}${fragment ? `#${fragment}` : ''}`);
    if (!validate) throw new Error(`no schema ${file}#${fragment}`);
    return validate;
  }
}

/** Turns Ajv errors into pointer + message pairs a client can act on. */
export function toSchemaIssues(
  errors: readonly ErrorObject[] | null | undefined,
  prefix = '',
): SchemaIssue[] {
  return (errors ?? []).map((error) => {
    let pointer = prefix + error.instancePath;
    let message = error.message ?? 'is invalid';
    if (error.keyword === 'additionalProperties') {
      const extra = String((error.params as { additionalProperty: string }).additionalProperty);
      pointer = `${pointer}/${extra.replace(/~/g, '~0').replace(/\//g, '~1')}`;
      message = 'is not an allowed field';
    } else if (error.keyword === 'required') {
      const missing = String((error.params as { missingProperty: string }).missingProperty);
      pointer = `${pointer}/${missing}`;
      message = 'is required';
    } else if (error.keyword === 'propertyNames') {
      message = `has a key that is not allowed (${String((error.params as { propertyName: string }).propertyName)}): keys must be non-empty, not start with '$' and contain no '.'`;
    }
    return { pointer: pointer === '' ? '/' : pointer, message };
  });
}

/** http(s) URL with a host, without credentials, query or fragment. */
export function isRegistryUrl(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  return (
    (url.protocol === 'http:' || url.protocol === 'https:') &&
    url.hostname !== '' &&
    url.username === '' &&
    url.password === '' &&
    url.search === '' &&
    url.hash === '' &&
    !value.includes('?') &&
    !value.includes('#')
  );
}
