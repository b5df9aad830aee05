/**
 * The catalog's domain errors. They carry no HTTP status: src/catalog/http/problem.ts maps each
 * `code` to a status and a problem type in one table.
 */

/** One validation failure: a JSON pointer into the request part named by the error, and why. */
export interface Issue {
  readonly pointer: string;
  readonly message: string;
}

export const ERROR_CODES = [
  'validation',
  'unauthorized',
  'forbidden',
  'not_found',
  'method_not_allowed',
  'conflict',
  'precondition_failed',
  'unprocessable',
  'unsupported_media_type',
  'payload_too_large',
  'malformed_json',
  'too_many_requests',
  'unavailable',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Base class: `message` is one readable sentence that clients show as the envelope's `error`. */
export class CatalogError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly issues: readonly Issue[] = [],
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** The request is not acceptable as sent (bad body, bad filter, bad id, bad paging). */
export class ValidationError extends CatalogError {
  constructor(message: string, issues: readonly Issue[] = []) {
    super('validation', message, issues);
  }

  /**
   * A validation error whose sentence is built from its first issue, the pointer kept apart from
   * the message (`Invalid filter at /$where: operator $where is not allowed`).
   */
  static of(issues: readonly Issue[], what: string): ValidationError {
    const first = issues[0];
    const at =
      first === undefined || first.pointer === '' || first.pointer === '/' ? '' : ` at ${first.pointer}`;
    const sentence = first ? `${what}${at}: ${first.message}` : `${what} is invalid`;
    return new ValidationError(sentence, issues);
  }
}

export class NotFoundError extends CatalogError {
  constructor(id: string, message = `Container registry ${id} not found`) {
    super('not_found', message);
  }
}

export class ConflictError extends CatalogError {
  constructor(message: string) {
    super('conflict', message);
  }
}

export class PreconditionFailedError extends CatalogError {
  constructor() {
    super(
      'precondition_failed',
      'The container registry was changed since it was read (If-Match does not match)',
    );
  }
}

/** The request is well-formed but refers to something unusable, e.g. `?verify=true` on an unreachable registry. */
export class UnprocessableError extends CatalogError {
  constructor(message: string) {
    super('unprocessable', message);
  }
}
