/**
 * Who may do what where (DESIGN 9): namespaces are repository-name prefixes, the longest match
 * wins, and a repository outside every namespace is for admins only. Within a namespace: `public`
 * grants pull to everyone (anonymous included), rules grant actions to named subjects, and a robot
 * has the actions it was created with inside its own prefix.
 */
import type { AuthConfig, NamespaceConfig } from './auth-config.js';
import { ACTIONS, type Action } from './scopes.js';

/** Who is asking: a user or robot name, or `undefined` for anonymous. */
export interface Principal {
  readonly name: string | undefined;
  /** What a robot account was created for (`robot create --namespace --actions`). */
  readonly robot?: { readonly prefix: string; readonly actions: readonly Action[] };
}

export const ANONYMOUS: Principal = Object.freeze({ name: undefined });

/**
 * Whether `prefix` covers repository `name`: a prefix ending in `/` covers every repository below
 * it; any other prefix is a repository name and covers it and the repositories below it
 * (`library/nginx` covers `library/nginx` and `library/nginx/debug`, not `library/nginx-dev`).
 */
export function covers(prefix: string, name: string): boolean {
  if (prefix.endsWith('/')) return name.startsWith(prefix);
  return name === prefix || name.startsWith(`${prefix}/`);
}

export class Policy {
  /** Longest prefix first, so the first match is the one that wins. */
  private readonly namespaces: readonly NamespaceConfig[];
  private readonly admins: ReadonlySet<string>;

  constructor(config: Pick<AuthConfig, 'namespaces' | 'admins'>) {
    this.namespaces = [...config.namespaces].sort((a, b) => b.prefix.length - a.prefix.length);
    this.admins = new Set(config.admins);
  }

  /** Every namespace, longest prefix first. */
  allNamespaces(): readonly NamespaceConfig[] {
    return this.namespaces;
  }

  /** The namespace that governs `name`, or `undefined` (admins only). */
  namespaceOf(name: string): NamespaceConfig | undefined {
    return this.namespaces.find((namespace) => covers(namespace.prefix, name));
  }

  isAdmin(principal: Principal): boolean {
    return principal.name !== undefined && principal.robot === undefined && this.admins.has(principal.name);
  }

  /** Every action `principal` may take on repository `name`. */
  granted(principal: Principal, name: string): Set<Action> {
    if (this.isAdmin(principal)) return new Set(ACTIONS);
    const actions = new Set<Action>();
    const namespace = this.namespaceOf(name);
    if (namespace === undefined) return actions;
    if (namespace.public) actions.add('pull');
    if (principal.name === undefined) return actions;
    if (principal.robot !== undefined && covers(principal.robot.prefix, name))
      for (const action of principal.robot.actions) actions.add(action);
    for (const rule of namespace.rules)
      if (rule.subjects.includes(principal.name)) for (const action of rule.actions) actions.add(action);
    return actions;
  }
}
