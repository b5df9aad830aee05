import { Command, Option } from 'commander';
import { allPages, CatalogClient, type Page, type PageRequest } from './catalog-client.js';
import { CLIENT_ENV_VARS, DEFAULT_CATALOG_URL, resolveClientConfig, type ConnectionFlags } from './config.js';
import { ClientError, EXIT_CODES } from './errors.js';
import { expectObject, parseAssignments, parseJsonArgument, readJsonFile } from './input.js';
import { JsonArrayWriter, Output, renderFields, renderJson, TableWriter, type Column } from './output.js';

/**
 * The client commands of the CLI (`registries`, `health`, `images`): each parses its flags, makes
 * one call of `CatalogClient` (or walks pages), and prints a table, fields or `--json`. A failure
 * is one line on stderr and an exit status from `EXIT_CODES`.
 */

type Env = Readonly<Record<string, string | undefined>>;
type Row = Record<string, unknown>;

/** Where the commands read and write (the process's streams; tests of the module may pass others). */
export interface ClientIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly stdin: NodeJS.ReadableStream;
}

interface CommonFlags extends ConnectionFlags {
  json?: boolean;
}

interface ListFlags extends CommonFlags {
  limit?: string;
  skip?: string;
  all?: boolean;
  sort?: string;
  health?: string;
}

/** The unique key that ends the sort of a registries walk (`--all`). */
const ID = 'container_registry_id';

/** The health report exit status: the check worked, the registry is not healthy. */
export const UNHEALTHY_EXIT_CODE = 6;

const REGISTRY_COLUMNS: Column<Row>[] = [
  { header: 'ID', value: (r) => r.container_registry_id, max: 36 },
  { header: 'NAME', value: (r) => r.container_registry_name, max: 32 },
  { header: 'URL', value: (r) => r.container_registry_public_url, max: 48 },
  {
    header: 'TAGS',
    value: (r) => (r.container_registry_tags as string[] | undefined)?.join(',') ?? '',
    max: 60,
  },
];
const STATUS_COLUMNS: Column<Row>[] = [
  { header: 'ID', value: (r) => r.container_registry_id, max: 36 },
  { header: 'STATUS', value: (r) => r.status, max: 12 },
  { header: 'CHECKED', value: (r) => r.checked_at, max: 24 },
];
const IMAGE_COLUMNS: Column<Row>[] = [
  { header: 'PULL REFERENCE', value: (r) => r.pull_reference, max: 64 },
  { header: 'DIGEST', value: (r) => shortDigest(r.digest), max: 19 },
  { header: 'PLATFORMS', value: (r) => platforms(r.platforms), max: 40 },
  {
    header: 'SIGNED',
    value: (r) => ((r.referrers as { signatures?: number } | undefined)?.signatures ? 'yes' : 'no'),
  },
  { header: 'REGISTRY', value: (r) => r.container_registry_id, max: 36 },
];
const CANDIDATE_COLUMNS: Column<Row>[] = [
  { header: 'REGISTRY', value: (r) => r.container_registry_name, max: 32 },
  { header: 'STATUS', value: (r) => r.status, max: 12 },
  {
    header: 'LATENCY',
    value: (r) => (typeof r.latency_ms === 'number' ? `${r.latency_ms} ms` : '-'),
    max: 10,
  },
  { header: 'DIGEST', value: (r) => shortDigest(r.digest), max: 19 },
  { header: 'PULL', value: (r) => `docker pull ${String(r.pull_reference)}`, max: 200 },
];

/** Adds `registries`, `health` and `images` to the program; `env` is read for `AIOS_CATALOG_*` only. */
export function addClientCommands(
  program: Command,
  env: Env,
  io: ClientIo = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin },
): void {
  const out = new Output(io.stdout);
  const connected = withConnection;

  const registries = program
    .command('registries')
    .description(
      `Client: list, read, create, update, delete and query the entries of a catalog (${CLIENT_ENV_VARS[0]})`,
    );

  listing(
    connected(
      registries.command('list').description('List registries (a page of 100 unless --all or --limit)'),
    ),
  ).action(
    run(io, env, async (client, flags: ListFlags) => {
      await writeListing(
        out,
        io,
        flags,
        (page) => client.queryRegistries({}, page),
        REGISTRY_COLUMNS,
        'registries',
        ID,
      );
    }),
  );

  connected(
    registries.command('get').description('Show one registry').argument('<id>', 'container_registry_id'),
  ).action(
    run(io, env, async (client, id: string, flags: CommonFlags) => {
      const document = await client.getRegistry(id);
      await out.write(flags.json ? renderJson(document) : renderFields(document));
    }),
  );

  connected(
    registries
      .command('create')
      .description('Create a registry from a JSON document (--file, - for stdin) and/or flags (flags win)')
      .option('--file <file>', 'the document as JSON (the AIOS entry.json format); - reads standard input')
      .option('--id <uuid>', 'container_registry_id (generated when absent)')
      .option('--name <name>', 'container_registry_name')
      .option('--public-url <url>', 'container_registry_public_url')
      .option('--image-prefix <prefix>', 'container_registry_image_prefix')
      .option('--tag <tag>', 'a tag; repeatable', collect, [])
      .option('--metadata <json>', 'container_registry_metadata as a JSON object')
      .option('--config <json>', 'container_registry_config as a JSON object (credentials are write-only)')
      .option('--storage-info <json>', 'container_registry_storage_info as a JSON object')
      .option('--verify', 'probe the registry first and refuse one that is unreachable'),
  ).action(
    run(io, env, async (client, flags: CreateFlags) => {
      const document = await createDocument(flags, io.stdin);
      const created = await client.createRegistry(document, flags.verify === true);
      await out.write(flags.json ? renderJson(created) : `created ${created.id}\n`);
    }),
  );

  connected(
    registries
      .command('update')
      .description(
        'Update a registry: --set path=value (dotted paths), --unset path, or an update JSON (--file)',
      )
      .argument('<id>', 'container_registry_id')
      .option(
        '--set <path=value>',
        'set a field; the value is JSON when it parses (42, true, ["a"]), else text; repeatable',
        collect,
        [],
      )
      .option('--set-string <path=value>', 'set a field to the text as is; repeatable', collect, [])
      .option('--unset <path>', 'remove a field; repeatable', collect, [])
      .option(
        '--file <file>',
        'the update as JSON: operators ($set, $unset, $push, $addToSet, $pull) or a partial document; - reads stdin',
      ),
  ).action(
    run(io, env, async (client, id: string, flags: UpdateFlags) => {
      const update = await updateBody(flags, io.stdin);
      const updated = await client.updateRegistry(id, update);
      await out.write(flags.json ? renderJson(updated.container_registry) : `updated ${id}\n`);
    }),
  );

  connected(
    registries.command('delete').description('Delete a registry').argument('<id>', 'container_registry_id'),
  ).action(
    run(io, env, async (client, id: string, flags: CommonFlags) => {
      const deleted = await client.deleteRegistry(id);
      await out.write(flags.json ? renderJson({ ...deleted, container_registry_id: id }) : `deleted ${id}\n`);
    }),
  );

  listing(
    connected(
      registries
        .command('query')
        .description('Query registries with a MongoDB-style filter (README, Queries)')
        .argument(
          '[filter]',
          'the filter as JSON, e.g. \'{"container_registry_tags": {"$in": ["ai"]}}\'; {} lists all',
        )
        .option('--file <file>', 'read the filter from a file; - reads standard input'),
    ),
  ).action(
    run(io, env, async (client, filter: string | undefined, flags: ListFlags & { file?: string }) => {
      const body = await filterBody(filter, flags.file, io.stdin);
      await writeListing(
        out,
        io,
        flags,
        (page) => client.queryRegistries(body, page),
        REGISTRY_COLUMNS,
        'registries',
        ID,
      );
    }),
  );

  const health = connected(
    program
      .command('health')
      .description(
        'Client: probe a registry now (exit status 6 when it is not healthy), or list the last status of all',
      )
      .argument('[id]', 'container_registry_id; without it, every checked registry')
      .option('--cached', 'the last stored report instead of a probe now')
      .option('--limit <n>', 'entries per page (without an id)')
      .option('--skip <n>', 'entries to skip (without an id)')
      .addOption(new Option('--all', 'every entry, page after page (without an id)').conflicts('limit')),
  );
  health.action(
    run(io, env, async (client, id: string | undefined, flags: ListFlags & { cached?: boolean }) => {
      if (id === undefined) {
        await writeListing(
          out,
          io,
          flags,
          (page) => client.healthStatuses(page),
          STATUS_COLUMNS,
          'checked registries',
        );
        return;
      }
      const report = await client.checkHealth(id, flags.cached === true);
      await out.write(flags.json ? renderJson(report) : renderFields(report));
      if (report.status !== 'healthy') process.exitCode = UNHEALTHY_EXIT_CODE;
    }),
  );

  const images = program
    .command('images')
    .description('Client: query the image index, find where an image can be pulled');
  listing(
    connected(
      images
        .command('query')
        .description(
          'Query image records with a filter (fields of the record, dotted paths into platforms and referrers)',
        )
        .argument(
          '[filter]',
          'the filter as JSON, e.g. \'{"repository": {"$regex": "^team/"}}\'; {} lists all',
        )
        .option('--file <file>', 'read the filter from a file; - reads standard input'),
    ),
  ).action(
    run(io, env, async (client, filter: string | undefined, flags: ListFlags & { file?: string }) => {
      const body = await filterBody(filter, flags.file, io.stdin);
      await writeListing(out, io, flags, (page) => client.queryImages(body, page), IMAGE_COLUMNS, 'images');
    }),
  );

  connected(
    images
      .command('resolve')
      .description('Where can I pull this image now: candidates healthy and fast first, with pull commands')
      .argument('[reference]', 'repository[:tag] or repository@digest (no tag means :latest)')
      .option('--digest <digest>', 'any repository holding this digest (instead of a reference)')
      .option('--platform <os/arch[/variant]>', 'only candidates with this platform')
      .option('--signed', 'only signed images'),
  ).action(
    run(io, env, async (client, reference: string | undefined, flags: ResolveFlags) => {
      if ((reference === undefined) === (flags.digest === undefined))
        throw new ClientError('usage', 'give a reference or --digest (one of them)');
      const resolved = await client.resolveImage({
        reference,
        digest: flags.digest,
        platform: flags.platform,
        signed: flags.signed,
      });
      await out.write(
        flags.json ? renderJson(resolved) : new TableWriter(CANDIDATE_COLUMNS).render(resolved.candidates),
      );
    }),
  );

  // Errors stay one line: no help after them (the program's own commands keep theirs).
  for (const command of [registries, images]) command.showHelpAfterError(false);
}

interface CreateFlags extends CommonFlags {
  file?: string;
  id?: string;
  name?: string;
  publicUrl?: string;
  imagePrefix?: string;
  tag: string[];
  metadata?: string;
  config?: string;
  storageInfo?: string;
  verify?: boolean;
}

interface UpdateFlags extends CommonFlags {
  set: string[];
  setString: string[];
  unset: string[];
  file?: string;
}

interface ResolveFlags extends CommonFlags {
  digest?: string;
  platform?: string;
  signed?: boolean;
}

/** The flags every client command takes. */
function withConnection(command: Command): Command {
  return command
    .option('--url <url>', `the catalog (env AIOS_CATALOG_URL, default ${DEFAULT_CATALOG_URL})`)
    .option(
      '--token <token>',
      'API token (env AIOS_CATALOG_TOKEN; prefer it or --token-file: flags show in ps)',
    )
    .option('--token-file <file>', 'read the API token from a file (env AIOS_CATALOG_TOKEN_FILE)')
    .option('--timeout <ms>', 'longest wait for one answer (env AIOS_CATALOG_TIMEOUT_MS, default 30000)')
    .option('--json', 'print the data as JSON (lists: an array, one entry per line) for scripts')
    .showHelpAfterError(false);
}

/** The paging flags of a listing. */
function listing(command: Command): Command {
  return command
    .option('--limit <n>', 'entries per page (1 to 1000, default 100)')
    .option('--skip <n>', 'entries to skip')
    .addOption(
      new Option('--all', 'every entry, 1000 per request, printed as they arrive').conflicts('limit'),
    )
    .option(
      '--sort <field>',
      'sort by a field, -field for descending (--all adds the id last, so pages never overlap)',
    )
    .option(
      '--health <statuses>',
      'only registries whose last status is one of these (healthy,unhealthy,unreachable,refused)',
    );
}

/**
 * The action of a client command: resolves the connection, runs `body` with a client, and turns
 * a `ClientError` into one stderr line and its exit status.
 */
function run<A extends unknown[]>(
  io: ClientIo,
  env: Env,
  body: (client: CatalogClient, ...args: A) => Promise<void>,
): (...args: unknown[]) => Promise<void> {
  return async (...args: unknown[]) => {
    // commander passes the arguments, then the options, then the command.
    const flags = args[args.length - 2] as CommonFlags;
    // `... | head`: the reader left, which is no failure of the command.
    io.stdout.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EPIPE') process.exit(0);
      throw error;
    });
    try {
      const config = resolveClientConfig(flags, env);
      if (config.warning !== undefined) io.stderr.write(`${config.warning}\n`);
      await body(new CatalogClient(config), ...(args.slice(0, -1) as A));
    } catch (error) {
      if (!(error instanceof ClientError)) throw error;
      io.stderr.write(`error: ${error.message}\n`);
      process.exitCode = EXIT_CODES[error.kind];
    }
  };
}

/**
 * A listing: one page (`--limit`/`--skip`, 100 by default), or with `--all` every page in turn,
 * each written before the next is fetched. A note on stderr says when more remain.
 */
async function writeListing(
  out: Output,
  io: ClientIo,
  flags: ListFlags,
  fetchPage: (page: PageRequest) => Promise<Page<Row>>,
  columns: Column<Row>[],
  noun: string,
  tiebreak?: string,
): Promise<void> {
  const start: PageRequest = {
    limit: count(flags.limit, '--limit') ?? 100,
    skip: count(flags.skip, '--skip'),
    // Pages of one walk must not overlap or miss entries: a unique key last makes the order total.
    sort: flags.all && tiebreak !== undefined ? withTiebreak(flags.sort, tiebreak) : flags.sort,
    health: flags.health,
  };
  const table = new TableWriter(columns);
  const json = new JsonArrayWriter();
  const render = (items: Row[]) => (flags.json ? json.render(items) : table.render(items));
  if (flags.all) {
    let seen = 0;
    for await (const page of allPages(fetchPage, start)) {
      seen += page.items.length;
      await out.write(render(page.items));
    }
    if (flags.json) await out.write(json.end());
    else if (seen === 0) io.stderr.write(`no ${noun}\n`);
    return;
  }
  const page = await fetchPage(start);
  await out.write(render(page.items));
  if (flags.json) await out.write(json.end());
  const first = start.skip ?? 0;
  if (page.items.length === 0) io.stderr.write(`no ${noun}${first > 0 ? ` after ${first}` : ''}\n`);
  else if (page.total !== undefined && first + page.items.length < page.total)
    io.stderr.write(
      `showing ${first + 1}-${first + page.items.length} of ${page.total}; --all for every one, --skip ${first + page.items.length} for the next page\n`,
    );
}

async function createDocument(flags: CreateFlags, stdin: NodeJS.ReadableStream): Promise<Row> {
  const base =
    flags.file === undefined ? {} : expectObject(await readJsonFile(flags.file, stdin), 'the document');
  const fromFlags: Row = {
    container_registry_id: flags.id,
    container_registry_name: flags.name,
    container_registry_public_url: flags.publicUrl,
    container_registry_image_prefix: flags.imagePrefix,
    container_registry_tags: flags.tag.length > 0 ? flags.tag : undefined,
    container_registry_metadata:
      flags.metadata && expectObject(parseJsonArgument(flags.metadata, '--metadata'), '--metadata'),
    container_registry_config:
      flags.config && expectObject(parseJsonArgument(flags.config, '--config'), '--config'),
    container_registry_storage_info:
      flags.storageInfo &&
      expectObject(parseJsonArgument(flags.storageInfo, '--storage-info'), '--storage-info'),
  };
  const document = {
    ...base,
    ...Object.fromEntries(Object.entries(fromFlags).filter(([, v]) => v !== undefined)),
  };
  if (Object.keys(document).length === 0)
    throw new ClientError('usage', 'nothing to create: give --file or --name and --public-url');
  return document;
}

async function updateBody(flags: UpdateFlags, stdin: NodeJS.ReadableStream): Promise<Row> {
  const fromFlags = flags.set.length + flags.setString.length + flags.unset.length > 0;
  if (flags.file !== undefined) {
    if (fromFlags) throw new ClientError('usage', '--file and --set/--set-string/--unset exclude each other');
    return expectObject(await readJsonFile(flags.file, stdin), 'the update');
  }
  if (!fromFlags)
    throw new ClientError('usage', 'nothing to update: give --set, --set-string, --unset or --file');
  const update: Row = {};
  const set = { ...parseAssignments(flags.set, false), ...parseAssignments(flags.setString, true) };
  if (Object.keys(set).length > 0) update.$set = set;
  if (flags.unset.length > 0) update.$unset = Object.fromEntries(flags.unset.map((path) => [path, '']));
  return update;
}

async function filterBody(
  argument: string | undefined,
  file: string | undefined,
  stdin: NodeJS.ReadableStream,
) {
  if (argument !== undefined && file !== undefined)
    throw new ClientError('usage', 'give the filter as an argument or --file, not both');
  const filter =
    file !== undefined
      ? await readJsonFile(file, stdin)
      : argument !== undefined
        ? parseJsonArgument(argument, 'the filter')
        : {};
  return expectObject(filter, 'the filter');
}

function withTiebreak(sort: string | undefined, key: string): string {
  if (sort === undefined || sort.trim() === '') return key;
  return sort.split(',').some((part) => part.trim().replace(/^[-+]/, '') === key) ? sort : `${sort},${key}`;
}

function count(raw: string | undefined, flag: string): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d{1,9}$/.test(raw))
    throw new ClientError('usage', `${flag} must be a whole number, got ${JSON.stringify(raw.slice(0, 40))}`);
  return Number(raw);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function shortDigest(digest: unknown): string {
  return typeof digest === 'string' ? digest.slice(0, 19) : '-';
}

function platforms(list: unknown): string {
  if (!Array.isArray(list)) return '-';
  return (list as Array<{ os?: string; architecture?: string; variant?: string }>)
    .map((p) => [p.os, p.architecture, p.variant].filter(Boolean).join('/'))
    .join(',');
}
