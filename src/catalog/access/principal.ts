import type { Role } from './tokens.js';

/** The token behind a request: its configured name and role. */
export interface Principal {
  readonly name: string;
  readonly role: Role;
}
