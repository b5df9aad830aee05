/**
 * Registry errors. Every failure the registry reports is a `OciError` whose `kind` selects one
 * row of {@link ERROR_KINDS}: the distribution-spec error code put in the JSON body and the HTTP
 * status. No call site chooses a status; adding a failure means adding a row here.
 */

/** The error codes of the OCI Distribution Specification v1.1 (the only codes we ever send). */
export const ERROR_CODES = [
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
  'TOOMANYREQUESTS',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** One row per failure: spec code, HTTP status, default message. */
export const ERROR_KINDS = {
  BlobUnknown: { code: 'BLOB_UNKNOWN', status: 404, message: 'blob unknown to registry' },
  BlobUploadInvalid: { code: 'BLOB_UPLOAD_INVALID', status: 400, message: 'blob upload invalid' },
  /** A chunk whose Content-Range does not start where the upload ends (spec: 416). */
  BlobUploadOutOfOrder: {
    code: 'BLOB_UPLOAD_INVALID',
    status: 416,
    message: 'chunk does not start at the end of the upload',
  },
  BlobUploadUnknown: { code: 'BLOB_UPLOAD_UNKNOWN', status: 404, message: 'blob upload unknown to registry' },
  DigestInvalid: {
    code: 'DIGEST_INVALID',
    status: 400,
    message: 'provided digest did not match uploaded content',
  },
  ManifestBlobUnknown: {
    code: 'MANIFEST_BLOB_UNKNOWN',
    status: 400,
    message: 'manifest references a manifest or blob unknown to the repository',
  },
  ManifestInvalid: { code: 'MANIFEST_INVALID', status: 400, message: 'manifest invalid' },
  ManifestTooLarge: { code: 'SIZE_INVALID', status: 413, message: 'manifest exceeds the size limit' },
  /** A blob upload past REGISTRY_MAX_UPLOAD_BYTES: the same code and status as a manifest too large. */
  BlobTooLarge: { code: 'SIZE_INVALID', status: 413, message: 'blob exceeds the upload size limit' },
  ManifestUnknown: { code: 'MANIFEST_UNKNOWN', status: 404, message: 'manifest unknown to registry' },
  NameInvalid: { code: 'NAME_INVALID', status: 400, message: 'invalid repository name' },
  NameUnknown: { code: 'NAME_UNKNOWN', status: 404, message: 'repository name not known to registry' },
  SizeInvalid: { code: 'SIZE_INVALID', status: 400, message: 'provided length did not match content length' },
  RangeNotSatisfiable: { code: 'SIZE_INVALID', status: 416, message: 'requested range not satisfiable' },
  Unauthorized: { code: 'UNAUTHORIZED', status: 401, message: 'authentication required' },
  Denied: { code: 'DENIED', status: 403, message: 'requested access to the resource is denied' },
  /** Read-only mode and unknown routes/methods, as CNCF Distribution answers them. */
  Unsupported: { code: 'UNSUPPORTED', status: 405, message: 'the operation is unsupported' },
  NotFound: { code: 'UNSUPPORTED', status: 404, message: 'no such endpoint' },
  /** `n` of tags/list or _catalog is not a non-negative integer; the spec has no code for it. */
  PaginationInvalid: { code: 'UNSUPPORTED', status: 400, message: 'n must be a non-negative integer' },
  TooManyRequests: { code: 'TOOMANYREQUESTS', status: 429, message: 'too many requests' },
  /**
   * Pull-through cache: the upstream cannot answer (connection refused, 5xx, circuit open) and
   * nothing usable is cached. The spec has no code for a gateway failure; UNSUPPORTED is what
   * our own failures use, the status (502/504) and message say what happened.
   */
  UpstreamUnavailable: { code: 'UNSUPPORTED', status: 502, message: 'upstream registry unavailable' },
  UpstreamTimeout: { code: 'UNSUPPORTED', status: 504, message: 'upstream registry did not answer in time' },
  /** The upstream refused the mirror's configured credentials (not the client's). */
  UpstreamDenied: {
    code: 'DENIED',
    status: 502,
    message: 'upstream registry refused the mirror credentials',
  },
} as const satisfies Record<string, { code: ErrorCode; status: number; message: string }>;

export type ErrorKind = keyof typeof ERROR_KINDS;

/** A request the registry refuses; rendered as `{"errors":[{code,message,detail}]}`. */
export class OciError extends Error {
  override name = 'OciError';
  readonly code: ErrorCode;
  readonly status: number;
  constructor(
    readonly kind: ErrorKind,
    message?: string,
    readonly detail?: unknown,
    /** Response headers the error needs, e.g. `Retry-After` on 429. */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message ?? ERROR_KINDS[kind].message);
    this.code = ERROR_KINDS[kind].code;
    this.status = ERROR_KINDS[kind].status;
  }

  /** The body the spec defines for error responses. */
  toBody(): { errors: { code: ErrorCode; message: string; detail?: unknown }[] } {
    return {
      errors: [
        this.detail === undefined
          ? { code: this.code, message: this.message }
          : { code: this.code, message: this.message, detail: this.detail },
      ],
    };
  }
}
