/**
 * The token-mode configuration file (`--auth-config`, DESIGN 9): YAML or JSON, validated by the
 * schema `schemas/registry-auth-config.schema.json` with the repository's one Ajv. Any problem,
 * an unknown key included, stops start-up (or a reload) with one line naming the key.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { ConfigError } from '../../shared/config/env.js';
import { SchemaSet, toSchemaIssues } from '../../shared/schemas.js';
import type { Action } from './scopes.js';

/** One namespace: a repository-name prefix with its visibility, quota and rules. */
export interface NamespaceConfig {
  readonly prefix: string;
  readonly public: boolean;
  readonly quotaBytes: number | undefined;
  readonly rules: readonly { readonly subjects: readonly string[]; readonly actions: readonly Action[] }[];
}

/** The parsed, validated and frozen auth config. */
export interface AuthConfig {
  readonly service: string;
  readonly issuer: string;
  readonly tokenTtlSeconds: number;
  readonly signingKeyFile: string | undefined;
  readonly htpasswd: string | undefined;
  readonly namespaces: readonly NamespaceConfig[];
  readonly admins: readonly string[];
}

interface RawConfig {
  service: string;
  issuer?: string;
  token_ttl_seconds?: number;
  signing_key_file?: string;
  htpasswd?: string;
  namespaces?: { prefix: string; public?: boolean; quota_bytes?: number; rules?: NamespaceConfig['rules'] }[];
  admins?: string[];
}

/** The variable named in errors (the `--auth-config` flag sets it). */
export const AUTH_CONFIG_VARIABLE = 'REGISTRY_AUTH_CONFIG';

let schemas: SchemaSet | undefined;

/** Validates an already parsed document; `source` names it in errors (a file path). */
export function parseAuthConfig(document: unknown, source: string): AuthConfig {
  schemas ??= new SchemaSet();
  const validate = schemas.validator('registry-auth-config.schema.json');
  if (!validate(document)) {
    const [issue] = toSchemaIssues(validate.errors);
    const key = issue?.pointer.replace(/^\//, '').replace(/\//g, '.') || '(top level)';
    const message =
      issue?.message === 'is not an allowed field'
        ? `unknown key ${key}`
        : `${key} ${issue?.message ?? 'is invalid'}`;
    throw new ConfigError(AUTH_CONFIG_VARIABLE, `${source}: ${message}`);
  }
  const raw = document as RawConfig;
  const seen = new Set<string>();
  for (const namespace of raw.namespaces ?? []) {
    if (seen.has(namespace.prefix))
      throw new ConfigError(
        AUTH_CONFIG_VARIABLE,
        `${source}: namespace prefix ${namespace.prefix} appears twice`,
      );
    seen.add(namespace.prefix);
  }
  return deepFreeze({
    service: raw.service,
    issuer: raw.issuer ?? raw.service,
    tokenTtlSeconds: raw.token_ttl_seconds ?? 300,
    signingKeyFile: raw.signing_key_file,
    htpasswd: raw.htpasswd,
    namespaces: (raw.namespaces ?? []).map((namespace) => ({
      prefix: namespace.prefix,
      public: namespace.public ?? false,
      quotaBytes: namespace.quota_bytes,
      rules: namespace.rules ?? [],
    })),
    admins: raw.admins ?? [],
  });
}

/** Reads and validates the file at `path` (YAML; JSON is YAML too). */
export function loadAuthConfig(path: string): AuthConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(AUTH_CONFIG_VARIABLE, `cannot be read: ${(error as Error).message}`);
  }
  let document: unknown;
  try {
    document = parse(text);
  } catch (error) {
    const firstLine = (error as Error).message.split('\n')[0];
    throw new ConfigError(AUTH_CONFIG_VARIABLE, `${path}: not valid YAML or JSON: ${firstLine}`);
  }
  return parseAuthConfig(document, path);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const member of Object.values(value)) deepFreeze(member);
    Object.freeze(value);
  }
  return value;
}
