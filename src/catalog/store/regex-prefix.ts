/**
 * The literal prefix of an anchored regular expression, as a half-open key range, so a filter
 * such as `{"repository": {"$regex": "^team-a/"}}` is an index range scan (`>= 'team-a/'` and
 * `< 'team-a0'`) instead of a scan of every document: what MongoDB does with a prefix regex.
 *
 * Conservative: only a pattern starting with `^`, without alternation, with no flag but `s`,
 * has a range. The range is `exact` (the regex matches exactly the keys in it) when the pattern
 * is the prefix alone, optionally followed by `.*`; otherwise it only narrows the candidates.
 */
export interface PrefixRange {
  readonly range: { readonly from: string; readonly to: string };
  readonly exact: boolean;
}

const SPECIAL = new Set([...'.[]()*+?{}^$|\\']);
const OPTIONAL = new Set(['*', '?', '{']);

export function prefixRange(pattern: string, flags: string): PrefixRange | undefined {
  if (!pattern.startsWith('^') || /[^s]/.test(flags)) return undefined;
  if (hasAlternation(pattern)) return undefined;
  let prefix = '';
  let at = 1;
  let stopped = false;
  while (at < pattern.length) {
    const char = pattern[at]!;
    let literal: string;
    let width: number;
    if (char === '\\') {
      const next = pattern[at + 1];
      // `\d`, `\w`, `\b`, `\u...` are classes or escapes, not the letter itself.
      if (next === undefined || /[a-zA-Z0-9]/.test(next)) {
        stopped = true;
        break;
      }
      literal = next;
      width = 2;
    } else if (SPECIAL.has(char)) {
      stopped = true;
      break;
    } else {
      // Whole code points: a surrogate pair is one character of the key.
      literal = String.fromCodePoint(pattern.codePointAt(at)!);
      width = literal.length;
    }
    const after = pattern[at + width];
    if (after !== undefined && OPTIONAL.has(after)) {
      stopped = true; // this character may be absent: it is not part of the prefix
      break;
    }
    prefix += literal;
    at += width;
    if (after === '+') {
      stopped = true;
      break;
    }
  }
  if (prefix === '') return undefined;
  const to = successor(prefix);
  if (to === undefined) return undefined;
  const rest = pattern.slice(at);
  return { range: { from: prefix, to }, exact: !stopped ? true : rest === '.*' };
}

/** An unescaped `|` outside a character class anywhere in the pattern. */
function hasAlternation(pattern: string): boolean {
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i];
    if (char === '\\') i++;
    else if (inClass) inClass = char !== ']';
    else if (char === '[') inClass = true;
    else if (char === '|') return true;
  }
  return false;
}

/**
 * The least string above every string starting with `prefix`, in the stores' byte order (UTF-8
 * order is code point order): the prefix with its last code point incremented.
 */
function successor(prefix: string): string | undefined {
  const points = [...prefix];
  const last = points.pop()!.codePointAt(0)!;
  if (last >= 0x10ffff) return undefined;
  const next = last + 1 === 0xd800 ? 0xe000 : last + 1;
  return points.join('') + String.fromCodePoint(next);
}
