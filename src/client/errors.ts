/**
 * What can go wrong in a client command, and the exit status each gives, so scripts can tell a
 * typo from an outage. The one table of exit codes (README, "CLI client").
 */
export const EXIT_CODES = {
  ok: 0,
  /** Bad input: an unknown flag, unparseable JSON, a filter or document the catalog refused (400, 413, 415, 422). */
  usage: 1,
  /** The registry (or image) does not exist (404). */
  'not-found': 2,
  /** The catalog could not answer: unreachable, timed out, 5xx, 429, or an answer that is not the catalog's. */
  unavailable: 3,
  /** No token, a bad or expired one (401), or one whose role is too low (403). */
  auth: 4,
  /** The entry exists already (409) or changed since it was read (412). */
  conflict: 5,
} as const;

export type FailureKind = keyof typeof EXIT_CODES;

/** A failure of a client command: one sentence for stderr and the kind that picks the exit status. */
export class ClientError extends Error {
  override readonly name = 'ClientError';
  constructor(
    readonly kind: Exclude<FailureKind, 'ok'>,
    message: string,
    /** The HTTP status of the catalog's answer, when there was one. */
    readonly status?: number,
  ) {
    super(message);
  }
}

/** The kind of failure an HTTP error status means. */
export function kindOfStatus(status: number): Exclude<FailureKind, 'ok'> {
  if (status === 401 || status === 403) return 'auth';
  if (status === 404) return 'not-found';
  if (status === 409 || status === 412) return 'conflict';
  if (status === 429 || status >= 500) return 'unavailable';
  return 'usage';
}
