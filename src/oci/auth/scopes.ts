/**
 * Scopes of the Docker token flow (`repository:<name>:<actions>`, `registry:catalog:*`) and the
 * `access` claims built from them. Parsing is strict: anything but these shapes is malformed.
 */
import { validateName } from '../domain/names.js';

/** What a caller may do in a repository. */
export const ACTIONS = ['pull', 'push', 'delete'] as const;
export type Action = (typeof ACTIONS)[number];

/** One requested or granted scope; `type` is `repository` or `registry` (name `catalog`). */
export interface AccessEntry {
  readonly type: 'repository' | 'registry';
  readonly name: string;
  readonly actions: readonly string[];
}

/** A scope the token endpoint cannot read (401 with the challenge). */
export class ScopeError extends Error {
  override name = 'ScopeError';
}

const MAX_SCOPES = 32;

/**
 * Parses the `scope` parameters of a token request (each may hold several space-separated
 * scopes). `*` means every action; actions we do not know are kept and simply never granted.
 */
export function parseScopes(values: readonly string[]): AccessEntry[] {
  const entries: AccessEntry[] = [];
  for (const value of values) {
    for (const scope of value.split(' ').filter((item) => item !== '')) {
      if (entries.length >= MAX_SCOPES) throw new ScopeError(`more than ${MAX_SCOPES} scopes`);
      entries.push(parseScope(scope));
    }
  }
  return entries;
}

function parseScope(scope: string): AccessEntry {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first)
    throw new ScopeError(`malformed scope ${JSON.stringify(scope.slice(0, 300))}`);
  const type = scope.slice(0, first);
  const name = scope.slice(first + 1, last);
  const actions = scope
    .slice(last + 1)
    .split(',')
    .filter((item) => item !== '');
  if (actions.length === 0 || actions.some((action) => !/^[a-z*]{1,16}$/.test(action)))
    throw new ScopeError(`malformed actions in scope ${JSON.stringify(scope.slice(0, 300))}`);
  if (type === 'registry' && name === 'catalog') return { type, name, actions };
  if (type !== 'repository') throw new ScopeError(`unknown scope type ${JSON.stringify(type.slice(0, 64))}`);
  try {
    validateName(name);
  } catch {
    throw new ScopeError(`invalid repository name in scope ${JSON.stringify(scope.slice(0, 300))}`);
  }
  return { type, name, actions };
}

/** The actions a scope asks for, `*` expanded. */
export function requestedActions(entry: AccessEntry): Set<Action> {
  const wanted = new Set<Action>();
  for (const action of entry.actions) {
    if (action === '*') for (const each of ACTIONS) wanted.add(each);
    else if ((ACTIONS as readonly string[]).includes(action)) wanted.add(action as Action);
  }
  return wanted;
}

/** The challenge's `scope` of a repository operation, as Distribution words it. */
export function challengeScope(name: string, action: Action): string {
  return `repository:${name}:${action === 'push' ? 'pull,push' : action}`;
}
