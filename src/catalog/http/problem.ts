import type { ErrorRequestHandler, Request, RequestHandler, Response } from 'express';
import type { Logger } from '../../shared/logger.js';
import { CatalogError, type ErrorCode, type Issue } from '../errors.js';

/** The one table mapping domain error codes to HTTP. */
const PROBLEMS: Record<ErrorCode, { status: number; title: string }> = {
  validation: { status: 400, title: 'Invalid request' },
  malformed_json: { status: 400, title: 'Malformed JSON' },
  unauthorized: { status: 401, title: 'Unauthorized' },
  forbidden: { status: 403, title: 'Forbidden' },
  not_found: { status: 404, title: 'Not found' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  conflict: { status: 409, title: 'Conflict' },
  precondition_failed: { status: 412, title: 'Precondition failed' },
  payload_too_large: { status: 413, title: 'Payload too large' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type' },
  unprocessable: { status: 422, title: 'Registry not usable' },
  too_many_requests: { status: 429, title: 'Too many requests' },
  unavailable: { status: 503, title: 'Service unavailable' },
};

/** body-parser's error types, translated to our codes. */
const BODY_PARSER_ERRORS: Record<string, ErrorCode> = {
  'entity.parse.failed': 'malformed_json',
  'entity.too.large': 'payload_too_large',
  'parameters.too.many': 'payload_too_large',
  'encoding.unsupported': 'unsupported_media_type',
  'charset.unsupported': 'unsupported_media_type',
  'request.aborted': 'validation',
  'request.size.invalid': 'validation',
  'entity.verify.failed': 'validation',
};

/** The error envelope: AIOS `{success: false, error}` plus RFC 9457 members. */
export function problemBody(
  code: ErrorCode,
  message: string,
  instance: string,
  requestId: string | undefined,
  issues: readonly Issue[] = [],
): { status: number; body: string } {
  const { status, title } = PROBLEMS[code];
  const body: Record<string, unknown> = {
    success: false,
    error: message,
    type: `/problems/${code.replace(/_/g, '-')}`,
    title,
    status,
    detail: message,
    instance,
  };
  if (requestId !== undefined) body.request_id = requestId;
  if (issues.length > 0) body.errors = issues;
  return { status, body: JSON.stringify(body) };
}

/** Sends the error envelope from Express. */
export function sendProblem(
  req: Request,
  res: Response,
  code: ErrorCode,
  message: string,
  issues: readonly Issue[] = [],
): void {
  const { status, body } = problemBody(code, message, req.path, req.id, issues);
  res.status(status).type('application/problem+json').send(body);
}

/** For a known path called with another method: 405 with `Allow`. */
export function methodNotAllowed(allowed: readonly string[]): RequestHandler {
  return (req, res) => {
    res.set('Allow', allowed.join(', '));
    sendProblem(
      req,
      res,
      'method_not_allowed',
      `${req.method} is not allowed on ${req.path} (allowed: ${allowed.join(', ')})`,
    );
  };
}

/** Translates every error that reaches Express into the envelope; unknown errors are 500 and logged. */
export function problemHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, next) => {
    if (res.headersSent) return next(error);
    if (error instanceof CatalogError) return sendProblem(req, res, error.code, error.message, error.issues);
    // The router could not percent-decode a path parameter (e.g. `/container_registry/%ff`).
    if (error instanceof URIError)
      return sendProblem(req, res, 'validation', 'The request path is not valid percent-encoding');
    if (isDecompressionError(error))
      return sendProblem(
        req,
        res,
        'validation',
        `The request body does not decode as its Content-Encoding (${req.headers['content-encoding'] ?? 'none'}) says: ${(error as Error).message}`,
      );
    const type = (error as { type?: unknown }).type;
    if (typeof type === 'string' && type in BODY_PARSER_ERRORS) {
      const code = BODY_PARSER_ERRORS[type]!;
      return sendProblem(req, res, code, bodyParserMessage(code, error as Error));
    }
    logger.error({ err: error, reqId: req.id }, 'unhandled error');
    res
      .status(500)
      .type('application/problem+json')
      .send(
        JSON.stringify({
          success: false,
          error: 'Internal server error',
          type: '/problems/internal',
          title: 'Internal server error',
          status: 500,
          detail: 'Internal server error',
          instance: req.path,
        }),
      );
  };
}

/**
 * zlib's errors from body-parser's inflating of a gzip/deflate/br body: `Z_DATA_ERROR`,
 * `Z_BUF_ERROR` (truncated), brotli's `ERR_..._ERROR_FORMAT_...`. They have no body-parser `type`.
 */
function isDecompressionError(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && (/^Z_[A-Z_]+$/.test(code) || /^ERR_.*_ERROR_/.test(code));
}

function bodyParserMessage(code: ErrorCode, error: Error): string {
  switch (code) {
    case 'malformed_json':
      return 'The request body is not valid JSON';
    case 'payload_too_large':
      return 'The request body is larger than the server accepts';
    case 'unsupported_media_type':
      return `The request body's encoding is not supported (${error.message})`;
    default:
      return 'The request body could not be read';
  }
}
