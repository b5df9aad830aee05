import { roleAllows, TokenSet, type Role, type TokenEntry } from './tokens.js';

/** What a request needs before it reaches a route. `public`: the kubelet's probes. */
export interface Requirement {
  readonly role: Role | 'public';
  /** An on-demand health check: it makes an outbound request, so it has its own, lower rate limit. */
  readonly probe: boolean;
}

export type Decision =
  | {
      readonly allowed: true;
      readonly client: string | undefined;
      /** The token's role; undefined for anonymous requests and when access control is off. */
      readonly role?: Role;
    }
  | { readonly allowed: false; readonly code: 'unauthorized' | 'forbidden'; readonly message: string };

/**
 * Bearer-token access control. With no tokens configured at start, access control is off (the
 * server then only listens on loopback unless told otherwise, see config), except when a tokens
 * file is in use (`tokensFile`): then it is on even while the file lists none, so only the public
 * routes answer until a token is added. Tokens can be replaced later (file reload) but never
 * switch it off.
 */
export class AccessPolicy {
  private tokens: TokenSet;

  constructor(
    tokens: readonly TokenEntry[],
    private readonly anonymousRead: boolean,
    private readonly clock: () => number = Date.now,
    tokensFile = false,
  ) {
    this.tokens = new TokenSet(tokens);
    this.enabled = tokens.length > 0 || tokensFile;
  }

  readonly enabled: boolean;

  replaceTokens(tokens: readonly TokenEntry[]): void {
    this.tokens = new TokenSet(tokens);
  }

  /** `client` names the token's owner, for rate limiting and logs; undefined for anonymous. */
  decide(requirement: Requirement, authorization: string | undefined): Decision {
    if (requirement.role === 'public' || !this.enabled) return { allowed: true, client: undefined };
    if (authorization === undefined) {
      if (requirement.role === 'read' && this.anonymousRead) return { allowed: true, client: undefined };
      return { allowed: false, code: 'unauthorized', message: 'A bearer token is required' };
    }
    const match = /^Bearer +(\S+) *$/i.exec(authorization);
    if (!match) {
      return {
        allowed: false,
        code: 'unauthorized',
        message: 'The Authorization header must be "Bearer <token>"',
      };
    }
    const check = this.tokens.check(match[1]!, this.clock());
    if (!check.ok) {
      const message =
        check.reason === 'expired' ? 'The bearer token has expired' : 'The bearer token is not valid';
      return { allowed: false, code: 'unauthorized', message };
    }
    if (!roleAllows(check.role, requirement.role)) {
      return {
        allowed: false,
        code: 'forbidden',
        message: `The token "${check.name}" has the ${check.role} role; this request needs ${requirement.role}`,
      };
    }
    return { allowed: true, client: check.name, role: check.role };
  }
}
