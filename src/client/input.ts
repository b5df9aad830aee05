import { readFile } from 'node:fs/promises';
import { ClientError } from './errors.js';

/** What a client command reads: JSON from an argument, a file or standard input, and `path=value` pairs. */

/** Larger than the catalog's default body limit (1 MiB): the catalog, not the CLI, says what is too big. */
const MAX_INPUT_BYTES = 16 * 1024 * 1024;

/** Parses JSON given on the command line; `what` names it in the one-line error. */
export function parseJsonArgument(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ClientError('usage', `${what} is not valid JSON: ${(error as Error).message}`);
  }
}

/** Reads and parses a JSON file, or standard input for `-`. */
export async function readJsonFile(file: string, stdin: NodeJS.ReadableStream): Promise<unknown> {
  const what = file === '-' ? 'standard input' : file;
  let text: string;
  try {
    text = file === '-' ? await readAll(stdin) : await readFile(file, 'utf8');
  } catch (error) {
    if (error instanceof ClientError) throw error;
    throw new ClientError(
      'usage',
      `cannot read ${what}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  return parseJsonArgument(text, what);
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += buffer.length;
    if (size > MAX_INPUT_BYTES)
      throw new ClientError('usage', `standard input is larger than ${MAX_INPUT_BYTES} bytes`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * `--set path=value` pairs as a `$set` object. The value is JSON when it parses as JSON (`42`,
 * `true`, `["a"]`, `{"k": 1}`, `"quoted"`), otherwise the text itself; `--set-string` keeps text.
 */
export function parseAssignments(pairs: readonly string[], raw: boolean): Record<string, unknown> {
  const set: Record<string, unknown> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0)
      throw new ClientError('usage', `--set expects path=value, got ${JSON.stringify(pair.slice(0, 80))}`);
    const value = pair.slice(at + 1);
    set[pair.slice(0, at)] = raw ? value : jsonOrText(value);
  }
  return set;
}

function jsonOrText(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

/** An object, not an array or a scalar: what a document, an update or a filter must be. */
export function expectObject(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new ClientError('usage', `${what} must be a JSON object`);
  return value as Record<string, unknown>;
}
