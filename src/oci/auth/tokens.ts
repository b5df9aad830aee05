/**
 * Bearer tokens of the Docker token flow: ES256 JWTs (jose) whose `access` claim lists what the
 * rules granted. Header: `kid` (RFC 7638 thumbprint) and `x5c` (our self-signed certificate), so
 * both our own verifier (by `kid`) and CNCF Distribution (by certificate chain) accept them. `aud`
 * is a single string: Distribution 2.8 reads it as one.
 */
import { randomUUID } from 'node:crypto';
import { SignJWT, jwtVerify, type JWTPayload } from 'jose';
import type { AccessEntry } from './scopes.js';
import type { KeyRing } from './signing-keys.js';

/** What tokens are issued for: audience, issuer and lifetime. */
export interface TokenSettings {
  readonly service: string;
  readonly issuer: string;
  readonly tokenTtlSeconds: number;
}

/** A token as the registry uses it once verified. */
export interface VerifiedToken {
  readonly subject: string | undefined;
  readonly access: readonly AccessEntry[];
  /** Expiry, epoch milliseconds. */
  readonly expiresAt: number;
}

/** A token that does not verify (bad signature, unknown key, expired, wrong audience, ...). */
export class TokenInvalid extends Error {
  override name = 'TokenInvalid';
}

export interface IssuedToken {
  readonly token: string;
  readonly expiresIn: number;
  readonly issuedAt: string;
}

export async function issueToken(
  keys: KeyRing,
  settings: TokenSettings,
  subject: string | undefined,
  access: readonly AccessEntry[],
  now: number,
): Promise<IssuedToken> {
  const issuedAt = Math.floor(now / 1000);
  const jwt = new SignJWT({ access: access.map(({ type, name, actions }) => ({ type, name, actions })) })
    .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: keys.active.kid, x5c: [keys.active.x5c] })
    .setIssuer(settings.issuer)
    .setAudience(settings.service)
    .setIssuedAt(issuedAt)
    // A little slack for clocks of other registries that verify our tokens.
    .setNotBefore(issuedAt - 10)
    .setExpirationTime(issuedAt + settings.tokenTtlSeconds)
    .setJti(randomUUID());
  if (subject !== undefined) jwt.setSubject(subject);
  return {
    token: await jwt.sign(keys.active.privateKey),
    expiresIn: settings.tokenTtlSeconds,
    issuedAt: new Date(issuedAt * 1000).toISOString(),
  };
}

export async function verifyToken(
  keys: KeyRing,
  settings: TokenSettings,
  token: string,
  now: number,
): Promise<VerifiedToken> {
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(
      token,
      (header) => {
        const key = keys.find(header.kid);
        if (key === undefined) throw new TokenInvalid('token signed by an unknown key');
        return key.publicKey;
      },
      {
        algorithms: ['ES256'],
        audience: settings.service,
        issuer: settings.issuer,
        currentDate: new Date(now),
        requiredClaims: ['exp', 'iat'],
        clockTolerance: 5,
      },
    ));
  } catch (error) {
    throw new TokenInvalid(error instanceof Error ? error.message : 'invalid token');
  }
  const access = payload.access;
  if (!Array.isArray(access) || !access.every(isAccessEntry))
    throw new TokenInvalid('malformed access claim');
  return { subject: payload.sub, access, expiresAt: (payload.exp ?? 0) * 1000 };
}

function isAccessEntry(value: unknown): value is AccessEntry {
  if (typeof value !== 'object' || value === null) return false;
  const entry = value as Record<string, unknown>;
  return (
    (entry.type === 'repository' || entry.type === 'registry') &&
    typeof entry.name === 'string' &&
    Array.isArray(entry.actions) &&
    entry.actions.every((action) => typeof action === 'string')
  );
}
