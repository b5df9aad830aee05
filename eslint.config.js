import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * Imports run downhill only. Each layer lists what stands above it, which it may not import
 * (README, Layout). Matched on the import string as written: a file in a folder reaches the
 * others through `../`, a file at the server's root through `./` (a server is one folder deep).
 */
const SERVERS_APART = {
  'src/shared': {
    regex: '(^|/)(catalog|oci)/',
    message: 'src/shared serves both servers and imports neither.',
  },
  'src/catalog': { regex: '^(\\.\\./)+oci/', message: 'The catalog does not import the bundled registry.' },
  'src/oci': { regex: '^(\\.\\./)+catalog/', message: 'The bundled registry does not import the catalog.' },
};
const CATALOG_TOP = ['app', 'main', 'routes', 'http', 'jobs'];
const LAYERS = [
  // The catalog: main.ts > app.ts > routes > http (the front door); jobs > events (outbox,
  // webhooks, SSE) > domain > health, store > language > model.
  ['src/catalog', 'app.ts', ['main', 'jobs']],
  ['src/catalog', 'routes/**', ['app', 'main', 'jobs', 'store', 'language']],
  ['src/catalog', 'http/**', [...CATALOG_TOP, 'events', 'domain', 'store', 'health', 'language']],
  ['src/catalog', 'jobs/**', ['app', 'main', 'routes', 'http']],
  ['src/catalog', 'events/**', CATALOG_TOP],
  ['src/catalog', 'domain/**', [...CATALOG_TOP, 'events']],
  ['src/catalog', 'health/**', [...CATALOG_TOP, 'events', 'domain', 'store', 'language', 'config']],
  ['src/catalog', 'store/**', [...CATALOG_TOP, 'events', 'domain', 'health']],
  ['src/catalog', 'language/**', [...CATALOG_TOP, 'events', 'domain', 'store', 'health', 'access', 'config']],
  [
    'src/catalog',
    'access/**',
    [...CATALOG_TOP, 'events', 'domain', 'store', 'health', 'language', 'config', 'model'],
  ],
  ['src/catalog', 'config.ts', [...CATALOG_TOP, 'events', 'domain', 'store', 'health', 'language', 'model']],
  [
    'src/catalog',
    '{model,errors}.ts',
    [...CATALOG_TOP, 'events', 'domain', 'store', 'health', 'language', 'access', 'config'],
  ],
  // The bundled registry: main.ts > app.ts > auth (token mode, logins: in front of the routes) > http
  // > proxy (the pull-through cache) > domain > storage > config, errors, digest.
  ['src/oci', 'auth/**', ['app', 'main']],
  ['src/oci', 'http/**', ['app', 'main', 'auth']],
  ['src/oci', 'proxy/**', ['app', 'main', 'auth', 'http']],
  ['src/oci', 'domain/**', ['app', 'main', 'auth', 'http', 'proxy']],
  ['src/oci', 'storage/**', ['app', 'main', 'auth', 'http', 'proxy', 'domain']],
  // Self-registration (the catalog client, heartbeats, the event queue): beside the proxy, above domain.
  ['src/oci', 'registration/**', ['app', 'main', 'auth', 'http', 'proxy']],
  // config.ts reads the proxy's settings through proxy/config.ts, which imports nothing above it.
  [
    'src/oci',
    '{config,errors,digest,storage-config}.ts',
    ['app', 'main', 'auth', 'http', 'domain', 'storage'],
  ],
];
const restrict = (...patterns) => ({ 'no-restricted-imports': ['error', { patterns }] });
const layerRules = LAYERS.map(([server, files, above, ignores = []]) => ({
  files: [`${server}/${files}`],
  ignores,
  rules: restrict(
    {
      regex: `^\\.${files.includes('/') ? '\\.' : ''}/(${above.join('|')})(/|\\.js$)`,
      message: 'Imports run downhill only: this layer may not import one above it (README, Layout).',
    },
    SERVERS_APART[server],
  ),
}));
const serverRules = Object.entries(SERVERS_APART).map(([server, pattern]) => ({
  files: [`${server}/**/*.ts`],
  rules: restrict(pattern),
}));

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', 'test/**/go/**', '.cache/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': [
        'error',
        { selector: 'TSEnumDeclaration', message: 'Use `as const` objects, not enums.' },
      ],
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/cli.ts'],
    rules: {
      'no-restricted-properties': [
        'error',
        {
          object: 'process',
          property: 'env',
          message: 'Only the CLI reads the environment; config modules take an Env record.',
        },
      ],
    },
  },
  ...serverRules,
  ...layerRules,
  // The CLI client (src/client) reaches a catalog over its HTTP API only: no server code, src/shared alone.
  {
    files: ['src/client/**/*.ts'],
    rules: restrict({
      regex: '(^|/)(catalog|oci)/',
      message: 'The CLI client talks to the catalog over HTTP: it imports neither server (src/shared only).',
    }),
  },
  // The dashboard's browser modules (plain JavaScript, served as they are) and the loader of
  // its files, which sits below the routes and imports nothing of the catalog.
  {
    files: ['src/catalog/ui/assets/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: Object.fromEntries(
        [
          ...['window', 'document', 'navigator', 'fetch', 'URL', 'URLSearchParams', 'FormData'],
          ...['AbortController', 'TextDecoderStream', 'setTimeout', 'clearTimeout', 'setInterval'],
          ...['clearInterval', 'console'],
        ].map((name) => [name, 'readonly']),
      ),
    },
  },
  {
    files: ['src/catalog/ui/*.ts'],
    rules: restrict(
      {
        regex: `^\\.\\./(${[...CATALOG_TOP, 'events', 'domain', 'store', 'health', 'language', 'access', 'config', 'model'].join('|')})(/|\\.js$)`,
        message: 'src/catalog/ui only reads files; it imports nothing of the catalog.',
      },
      SERVERS_APART['src/catalog'],
    ),
  },
);
