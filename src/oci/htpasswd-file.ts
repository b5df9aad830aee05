/**
 * `registry htpasswd add USER`: writes a bcrypt entry into an Apache htpasswd file, so users need
 * neither Apache's `htpasswd` (Debian's apache2-utils) nor a hand-made hash. The entry is the one
 * `htpasswd -B` writes (`$2y$`, cost 10), which this registry and CNCF Distribution both read.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import bcrypt from 'bcryptjs';

/** bcrypt's cost factor: Apache's `htpasswd -B` default is 5; 10 is what current guidance asks for. */
export const BCRYPT_COST = 10;

/** bcrypt reads at most 72 bytes of a password: a longer one would be silently cut. */
const MAX_PASSWORD_BYTES = 72;

export class HtpasswdInputError extends Error {
  override name = 'HtpasswdInputError';
}

/**
 * Adds `user` with `password` to `file` (created with mode 0600 when missing), or replaces the
 * user's entry. Other lines, comments included, are kept. The file is replaced atomically
 * (temp file + rename), so a registry reading it never sees half a file. Returns whether the
 * user was already there.
 */
export function addHtpasswdUser(file: string, user: string, password: string): { replaced: boolean } {
  if (!/^[^\s:#][^\s:]*$/.test(user))
    throw new HtpasswdInputError(
      `user name must be non-empty without spaces or ':' (got ${JSON.stringify(user)})`,
    );
  if (password === '') throw new HtpasswdInputError('password must not be empty');
  if (/[\r\n]/.test(password)) throw new HtpasswdInputError('password must be one line');
  if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES)
    throw new HtpasswdInputError(`password is longer than bcrypt's ${MAX_PASSWORD_BYTES} bytes`);
  const entry = `${user}:${bcrypt.hashSync(password, BCRYPT_COST).replace(/^\$2b\$/, '$2y$')}`;
  const exists = existsSync(file);
  const lines = exists ? readFileSync(file, 'utf8').split(/\r?\n/) : [];
  if (lines.at(-1) === '') lines.pop();
  const index = lines.findIndex((line) => line.trim().startsWith(`${user}:`));
  if (index >= 0) lines[index] = entry;
  else lines.push(entry);
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}`);
  writeFileSync(temp, `${lines.join('\n')}\n`, {
    mode: exists ? statSync(file).mode & 0o777 : 0o600,
    flag: 'wx',
  });
  renameSync(temp, file);
  return { replaced: index >= 0 };
}

/**
 * The password for `htpasswd add`: from standard input when it is not a terminal (one line; a
 * trailing newline is dropped: `printf %s "$PW" | ...` and `echo "$PW" | ...` both work), else
 * asked for twice at the terminal without echo.
 */
export async function readPassword(
  input: NodeJS.ReadStream = process.stdin,
  output: NodeJS.WriteStream = process.stderr,
): Promise<string> {
  if (!input.isTTY) {
    let text = '';
    for await (const chunk of input) {
      text += String(chunk);
      if (text.length > 4096) throw new HtpasswdInputError('standard input holds more than a password');
    }
    return text.replace(/\r?\n$/, '');
  }
  const first = await askHidden(input, output, 'Password: ');
  const second = await askHidden(input, output, 'Repeat password: ');
  if (first !== second) throw new HtpasswdInputError('the two passwords differ');
  return first;
}

async function askHidden(
  input: NodeJS.ReadStream,
  output: NodeJS.WriteStream,
  prompt: string,
): Promise<string> {
  const rl = createInterface({ input, output, terminal: true });
  output.write(prompt);
  // readline (the callback API's Interface) echoes what is typed through this method; silencing
  // it hides the password.
  (rl as unknown as { _writeToOutput: (text: string) => void })._writeToOutput = () => {};
  try {
    return await new Promise<string>((resolve) => rl.question('', resolve));
  } finally {
    rl.close();
    output.write('\n');
  }
}
