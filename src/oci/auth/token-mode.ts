/**
 * Token mode of the registry (DESIGN 9), at the HTTP edge:
 *
 *   GET /auth/token?service=&scope=...  Basic credentials of a user or robot, or none
 *                                       (anonymous): an ES256 JWT granting what the rules allow
 *   GET /auth/jwks.json                 the keys tokens are verified with (active + retired)
 *   GET /auth/certificates.pem          their certificates, for a Distribution rootcertbundle
 *   /v2/...                             a valid bearer token whose `access` holds the action the
 *                                       route needs, else 401 with the Bearer challenge
 *
 * Everything a reload can change (rules, users, keys, TTL) sits in one `State` swapped at once,
 * so a request sees either the old configuration or the new one.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, type Registry } from 'prom-client';
import { ConfigError } from '../../shared/config/env.js';
import type { Logger } from '../../shared/logger.js';
import type { Content } from '../domain/content.js';
import { paginate } from '../domain/content.js';
import type { Uploads } from '../domain/uploads.js';
import { validateName } from '../domain/names.js';
import { OciError } from '../errors.js';
import { send, type OciServices } from '../http/context.js';
import type { StorageDriver } from '../storage/driver.js';
import { AUTH_CONFIG_VARIABLE, type AuthConfig } from './auth-config.js';
import { loadHtpasswd, NO_USERS, type PasswordCheck, type PasswordCheckLoader } from './passwords.js';
import { ANONYMOUS, Policy, type Principal } from './policy.js';
import { QuotaLedger } from './quotas.js';
import { ROBOT_PREFIX, RobotStore } from './robots.js';
import {
  challengeScope,
  parseScopes,
  requestedActions,
  ScopeError,
  type AccessEntry,
  type Action,
} from './scopes.js';
import { KeyRing } from './signing-keys.js';
import { issueToken, TokenInvalid, verifyToken, type VerifiedToken } from './tokens.js';

/** What token mode needs from the app. */
export interface TokenModeDeps {
  readonly driver: StorageDriver;
  readonly logger: Logger;
  readonly now?: () => number;
  /** Uploads untouched this long expire; so do their quota reservations. */
  readonly uploadTimeoutSeconds: number;
  readonly loadPasswords?: PasswordCheckLoader;
}

/** What a request to a route needs, derived from the route table's names. */
interface Need {
  readonly action: Action | 'catalog' | undefined;
}

interface State {
  readonly config: AuthConfig;
  readonly policy: Policy;
  readonly passwords: PasswordCheck;
  readonly keys: KeyRing;
}

const VERIFIED_CACHE_LIMIT = 10_000;
const KEY_CHECK_MS = 2000;

function need(route: string, method: string): Need {
  switch (route) {
    case 'base':
      return { action: undefined };
    case 'catalog':
      return { action: 'catalog' };
    case 'manifest':
      return { action: method === 'PUT' ? 'push' : method === 'DELETE' ? 'delete' : 'pull' };
    case 'blob':
      return { action: method === 'DELETE' ? 'delete' : 'pull' };
    case 'uploads':
    case 'upload':
      return { action: 'push' };
    case 'tags':
    case 'referrers':
      return { action: 'pull' };
    default:
      return { action: undefined };
  }
}

function quoted(value: string): string {
  return `"${value.replace(/["\\]/g, '')}"`;
}

export class TokenMode {
  readonly quotas: QuotaLedger;
  readonly robots: RobotStore;
  private readonly now: () => number;
  private readonly verified = new Map<string, VerifiedToken>();
  private keysCheckedAt = 0;
  private issued: Counter<'result'> | undefined;
  /** The app's content, once attached (the quota scan reads its repositories). */
  private content: Pick<Content, 'repositories'> | undefined;

  private constructor(
    private state: State,
    private readonly deps: TokenModeDeps,
  ) {
    this.now = deps.now ?? Date.now;
    this.robots = new RobotStore(deps.driver, this.now);
    this.quotas = new QuotaLedger(deps.driver, state.policy, this.now, deps.uploadTimeoutSeconds * 1000);
  }

  /** Loads keys (generating one if needed) and users for `config`. */
  static async create(config: AuthConfig, deps: TokenModeDeps): Promise<TokenMode> {
    return new TokenMode(await TokenMode.load(config, deps, (deps.now ?? Date.now)()), deps);
  }

  private static async load(config: AuthConfig, deps: TokenModeDeps, now: number): Promise<State> {
    let passwords = NO_USERS;
    if (config.htpasswd !== undefined) {
      try {
        passwords = (deps.loadPasswords ?? loadHtpasswd)(config.htpasswd);
      } catch (error) {
        throw new ConfigError(AUTH_CONFIG_VARIABLE, `htpasswd cannot be read: ${(error as Error).message}`);
      }
    }
    const keys = await KeyRing.load(deps.driver, keySource(config), now);
    return { config, policy: new Policy(config), passwords, keys };
  }

  /** The current configuration. */
  get config(): AuthConfig {
    return this.state.config;
  }

  /** The current keys. */
  get keys(): KeyRing {
    return this.state.keys;
  }

  /**
   * Applies a new configuration (SIGHUP, file change) without a restart. On any error the old
   * one stays in force and the error is thrown to the caller (which logs it).
   */
  async reload(config: AuthConfig): Promise<void> {
    const next = await TokenMode.load(config, this.deps, this.now());
    const namespacesChanged =
      JSON.stringify(next.config.namespaces) !== JSON.stringify(this.state.config.namespaces);
    const previous = this.state.passwords;
    this.state = next;
    // Checks under way on the old users finish first; then its worker threads stop.
    void previous.close();
    this.verified.clear();
    if (namespacesChanged && this.content !== undefined) await this.quotas.start(this.content, next.policy);
  }

  /** Wires the quota ledger into the app's services; call once when building the app. */
  attach(uploads: Uploads, content: Content, metrics: Registry): { uploads: Uploads; content: Content } {
    this.content = content;
    this.quotas.registerMetrics(metrics);
    this.issued = new Counter({
      name: 'registry_tokens_issued_total',
      help: 'Token requests by result (issued, refused)',
      labelNames: ['result'] as const,
      registers: [metrics],
    });
    this.quotas
      .start(content)
      .catch((error: unknown) => this.deps.logger.error({ err: error }, 'quota scan failed'));
    return { uploads: this.quotas.guardUploads(uploads), content: this.quotas.guardContent(content) };
  }

  /** Serves the `/auth/...` paths. */
  async serve(req: IncomingMessage, res: ServerResponse, path: string, query: string): Promise<void> {
    const routes: Record<string, () => Promise<void>> = {
      '/auth/token': () => this.token(req, res, new URLSearchParams(query)),
      '/auth/jwks.json': async () =>
        send(res, 200, { 'Cache-Control': 'max-age=60' }, this.state.keys.jwks()),
      '/auth/certificates.pem': async () =>
        send(res, 200, { 'Content-Type': 'application/x-pem-file' }, this.state.keys.certificates()),
    };
    const route = routes[path];
    if (route === undefined) throw new OciError('NotFound');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      throw new OciError('Unsupported', `method ${req.method} not allowed on ${path}`);
    }
    await this.maybeReloadKeys();
    await route();
  }

  /**
   * Checks a `/v2/` request against its bearer token; returns the services the handler gets
   * (the catalog filtered to what the caller may pull). Throws 401 with the challenge.
   */
  async authorize(
    req: IncomingMessage,
    route: string,
    name: string,
    query: URLSearchParams,
    services: OciServices,
  ): Promise<OciServices> {
    const method = req.method ?? 'GET';
    const { action } = need(route, method);
    // A mount reads `from`: the challenge asks for both scopes at once, as Distribution's does.
    const from = query.get('from');
    const mountFrom =
      route === 'uploads' && from !== null && query.get('mount') !== null && from !== name
        ? validateName(from)
        : undefined;
    const scope =
      action === 'catalog'
        ? 'registry:catalog:*'
        : action === undefined
          ? undefined
          : `${challengeScope(name, action)}${mountFrom === undefined ? '' : ` repository:${mountFrom}:pull`}`;
    const token = await this.bearer(req, scope);
    if (action === undefined) return services;
    if (action === 'catalog') {
      if (!this.allows(token, 'registry', 'catalog', '*'))
        throw this.challenge(req, scope, 'insufficient_scope');
      return { ...services, content: await this.catalogFor(token, services.content) };
    }
    if (!this.allows(token, 'repository', name, action))
      throw this.challenge(req, scope, 'insufficient_scope');
    // A token that never asked for `from` gets the challenge again; one that asked and was denied
    // pull there falls back to a plain upload, the spec's answer to a blob it cannot mount.
    if (mountFrom !== undefined && !this.allows(token, 'repository', mountFrom, 'pull')) {
      const asked = token.access.some((entry) => entry.type === 'repository' && entry.name === mountFrom);
      if (!asked) throw this.challenge(req, scope, 'insufficient_scope');
      query.delete('mount');
      query.delete('from');
    }
    return services;
  }

  /** The 401 of a request without (valid) credentials, with the Bearer challenge. */
  challenge(req: IncomingMessage, scope: string | undefined, error?: string, message?: string): OciError {
    const host = (req.headers.host ?? 'localhost').replace(/[^A-Za-z0-9.:[\]-]/g, '');
    const forwarded = String(req.headers['x-forwarded-proto'] ?? '');
    const scheme =
      (req.socket as { encrypted?: boolean }).encrypted === true || forwarded === 'https' ? 'https' : 'http';
    const parts = [
      `realm=${quoted(`${scheme}://${host}/auth/token`)}`,
      `service=${quoted(this.state.config.service)}`,
      ...(scope === undefined ? [] : [`scope=${quoted(scope)}`]),
      ...(error === undefined ? [] : [`error=${quoted(error)}`]),
    ];
    const text =
      message ??
      (error === 'insufficient_scope'
        ? `the token does not grant ${scope ?? 'this access'}`
        : error === 'invalid_token'
          ? 'the bearer token is not valid'
          : 'authentication required');
    return new OciError('Unauthorized', text, undefined, { 'WWW-Authenticate': `Bearer ${parts.join(',')}` });
  }

  /** Flushes robot last-used times and stops the password check's worker threads (no timers). */
  async close(): Promise<void> {
    await this.robots.flushLastUsed();
    await this.state.passwords.close();
  }

  private async bearer(req: IncomingMessage, scope: string | undefined): Promise<VerifiedToken> {
    const header = req.headers.authorization;
    if (header === undefined || !/^bearer /i.test(header)) throw this.challenge(req, scope);
    const raw = header.slice(7).trim();
    const cached = this.verified.get(raw);
    const now = this.now();
    if (cached !== undefined && cached.expiresAt > now) return cached;
    await this.maybeReloadKeys();
    let token: VerifiedToken;
    try {
      token = await verifyToken(this.state.keys, this.state.config, raw, now);
    } catch (error) {
      if (!(error instanceof TokenInvalid)) throw error;
      throw this.challenge(req, scope, 'invalid_token', `the bearer token is not valid: ${error.message}`);
    }
    if (this.verified.size >= VERIFIED_CACHE_LIMIT) this.verified.clear();
    this.verified.set(raw, token);
    return token;
  }

  private allows(token: VerifiedToken, type: string, name: string, action: string): boolean {
    return token.access.some(
      (entry) =>
        entry.type === type &&
        entry.name === name &&
        (entry.actions.includes(action) || entry.actions.includes('*')),
    );
  }

  /** A `content` whose catalog lists only what the token's subject may pull now. */
  private async catalogFor(token: VerifiedToken, content: Content): Promise<Content> {
    const principal = await this.principalOf(token.subject);
    const policy = this.state.policy;
    const filtered = Object.create(content) as Content;
    filtered.catalog = async (n, last) =>
      paginate(
        (await content.repositories()).filter((name) => policy.granted(principal, name).has('pull')),
        n,
        last,
      );
    return filtered;
  }

  private async principalOf(subject: string | undefined): Promise<Principal> {
    if (subject === undefined || subject === '') return ANONYMOUS;
    if (subject.startsWith(ROBOT_PREFIX)) return (await this.robots.principal(subject)) ?? ANONYMOUS;
    return { name: subject };
  }

  /** `GET /auth/token`. */
  private async token(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
    const { config, policy } = this.state;
    const service = query.get('service');
    if (service !== null && service !== config.service) {
      this.issued?.inc({ result: 'refused' });
      throw this.challenge(
        req,
        undefined,
        'invalid_request',
        `unknown service ${JSON.stringify(service.slice(0, 253))}`,
      );
    }
    let requested: AccessEntry[];
    try {
      requested = parseScopes(query.getAll('scope'));
    } catch (error) {
      if (!(error instanceof ScopeError)) throw error;
      this.issued?.inc({ result: 'refused' });
      throw this.challenge(req, undefined, 'invalid_scope', error.message);
    }
    const principal = await this.login(req);
    const granted = new Map<string, AccessEntry>();
    for (const entry of requested) {
      const key = `${entry.type}:${entry.name}`;
      const actions = new Set(granted.get(key)?.actions ?? []);
      if (entry.type === 'registry') actions.add('*');
      else {
        const allowed = policy.granted(principal, entry.name);
        for (const action of requestedActions(entry)) if (allowed.has(action)) actions.add(action);
      }
      // Kept when nothing is granted: the registry can then tell "asked and denied" from "never asked".
      granted.set(key, { type: entry.type, name: entry.name, actions: [...actions] });
    }
    const issued = await issueToken(
      this.state.keys,
      config,
      principal.name,
      [...granted.values()],
      this.now(),
    );
    this.issued?.inc({ result: 'issued' });
    send(
      res,
      200,
      { 'Cache-Control': 'no-store' },
      {
        token: issued.token,
        access_token: issued.token,
        expires_in: issued.expiresIn,
        issued_at: issued.issuedAt,
      },
    );
  }

  /** Who sent the token request: anonymous, a robot, or an htpasswd user; 401 on bad credentials. */
  private async login(req: IncomingMessage): Promise<Principal> {
    const header = req.headers.authorization;
    if (header === undefined) return ANONYMOUS;
    const refuse = (message: string) => {
      this.issued?.inc({ result: 'refused' });
      return new OciError('Unauthorized', message, undefined, {
        'WWW-Authenticate': `Basic realm=${quoted(this.state.config.service)}`,
      });
    };
    if (!/^basic /i.test(header)) throw refuse('the token endpoint takes Basic credentials or none');
    const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
    const separator = decoded.indexOf(':');
    const user = separator < 0 ? decoded : decoded.slice(0, separator);
    if (user.startsWith(ROBOT_PREFIX)) {
      const check = await this.robots.authenticate(user, separator < 0 ? '' : decoded.slice(separator + 1));
      if (check.ok) return check.principal;
      if (check.reason === 'expired') throw refuse(`robot account ${user} has expired`);
      throw refuse('invalid username or password');
    }
    const name = await this.state.passwords.authenticate(header, req.socket.remoteAddress ?? '');
    if (name === undefined) throw refuse('invalid username or password');
    return { name };
  }

  /** Picks up a rotated key (file replaced, or `registry token-key rotate`) within seconds. */
  private async maybeReloadKeys(): Promise<void> {
    const now = this.now();
    if (now - this.keysCheckedAt < KEY_CHECK_MS) return;
    this.keysCheckedAt = now;
    const source = keySource(this.state.config);
    const mtime = await KeyRing.sourceMtime(this.deps.driver, source.signingKeyFile);
    if (mtime === this.state.keys.sourceMtimeMs) return;
    try {
      const keys = await KeyRing.load(this.deps.driver, source, now);
      this.state = { ...this.state, keys };
      this.deps.logger.info({ kid: keys.active.kid }, 'token signing key reloaded');
    } catch (error) {
      this.deps.logger.error({ err: error }, 'token signing key reload failed; keeping the current key');
    }
  }
}

function keySource(config: AuthConfig) {
  return {
    signingKeyFile: config.signingKeyFile,
    tokenTtlSeconds: config.tokenTtlSeconds,
    subject: config.service,
  };
}

/** A stable short id of the auth config for logs (which version is in force). */
export function configFingerprint(config: AuthConfig): string {
  return createHash('sha256').update(JSON.stringify(config)).digest('hex').slice(0, 12);
}
