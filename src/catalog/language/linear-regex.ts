import { RE2JS } from 're2js';

/**
 * `$regex` evaluated in process (embedded store filters, `$pull` conditions on every store) runs
 * on RE2JS, a linear-time engine: matching costs O(pattern x value) whatever the pattern, so
 * `(a|a)*$` or `.*.*.*b` over a 50 kB value cannot stop the event loop. JavaScript's backtracking
 * `RegExp` never sees user input. RE2 cannot run backreferences and lookaround (they need
 * backtracking); such patterns are refused up front by name, not silently run another way.
 */

/** Constructs RE2 refuses, matched on the pattern's text, with the name a client is told. */
const UNSUPPORTED: ReadonlyArray<readonly [RegExp, string]> = [
  [/\\[1-9]/, 'backreferences (\\1 ... \\9)'],
  [/\\k</, 'named backreferences (\\k<name>)'],
  [/\(\?<?[=!]/, 'lookaround ((?=, (?!, (?<=, (?<!)'],
  [/\(\?>/, 'atomic groups ((?>)'],
  [/[*+?}][+]/, 'possessive quantifiers (*+, ++, ?+)'],
];

/** A pattern the linear engine cannot run; `construct` names what to remove. */
export class UnsupportedRegexError extends Error {
  override name = 'UnsupportedRegexError';
  constructor(readonly construct: string) {
    super(`uses ${construct}, which the linear-time regex engine does not support`);
  }
}

/** What the query language needs of a compiled pattern. */
export interface LinearRegex {
  test(value: string): boolean;
}

/** Flags as `$options` spells them (`i`, `m`, `s`) to RE2JS flags. */
function flagsOf(options: string): number {
  let flags = 0;
  if (options.includes('i')) flags |= RE2JS.CASE_INSENSITIVE;
  if (options.includes('m')) flags |= RE2JS.MULTILINE;
  if (options.includes('s')) flags |= RE2JS.DOTALL;
  return flags;
}

/**
 * Compiles `pattern` (JavaScript/PCRE syntax as clients write it for MongoDB) for linear-time
 * matching. Throws `UnsupportedRegexError` for constructs only a backtracking engine can run,
 * and `SyntaxError` for a pattern that is not a regular expression at all.
 */
export function compileLinearRegex(pattern: string, options = ''): LinearRegex {
  // RE2JS's syntax translation turns `\k<name>` into a literal: refuse it before translating.
  if (/(?:^|[^\\])(?:\\\\)*\\k</.test(pattern)) throw new UnsupportedRegexError(UNSUPPORTED[1]![1]);
  let compiled: RE2JS;
  try {
    compiled = RE2JS.compile(RE2JS.translateRegExp(pattern), flagsOf(options));
  } catch (error) {
    // RE2 refused it: name the construct when it is one only backtracking engines run.
    const unsupported = UNSUPPORTED.find(([construct]) => construct.test(pattern));
    if (unsupported) throw new UnsupportedRegexError(unsupported[1]);
    throw new SyntaxError((error as Error).message, { cause: error });
  }
  return { test: (value) => compiled.test(value) };
}

/**
 * mingo's `$regex` predicate calls `exec` on the operand it was given (a `RegExp` its query
 * normalisation built from `$regex`/`$options`, never executed). This turns that operand into an
 * object with the same `exec` contract backed by the linear engine.
 */
export function linearExec(regex: RegExp | string, options?: string): { exec(value: string): unknown } {
  const source = typeof regex === 'string' ? regex : regex.source;
  const flags = typeof regex === 'string' ? (options ?? '') : regex.flags;
  const compiled = compileLinearRegex(source, flags);
  return { exec: (value) => (compiled.test(value) ? [value] : null) };
}
