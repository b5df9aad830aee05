# One image for both servers: `serve` (catalog API, default) or `registry` (bundled OCI registry).
#   docker build -t aios-registry-catalog:0.1.0 .
#   docker run -p 8080:8080 aios-registry-catalog:0.1.0            # catalog
#   docker run -p 5000:5000 aios-registry-catalog:0.1.0 registry   # registry

# Both stages use the Node release CI tests (test/setup/node-lts.sh; test/unit/runtime-pins.test.ts
# keeps the two equal).

# build compiles the TypeScript, drops the dev dependencies and puts in better-sqlite3 13.
FROM node:24.22.3-bookworm AS build
# Should anything compile with node-gyp, Node's headers are under /usr/local here (the repo's
# .npmrc points at /usr for Debian's nodejs package; an npm_config_* variable outranks it).
ENV npm_config_nodedir=/usr/local
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# --ignore-scripts: the only install script the image would run is better-sqlite3 12's compile,
# and the image ships 13 instead (below).
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# better-sqlite3 13 needs Node 22+, so package.json stays on 12 for Node 20; on Node 24 the image
# ships 13, whose Node-API binary comes inside its npm package (the CI run on Node 24 uses the same).
RUN npm run build && npm prune --omit=dev --no-audit --no-fund \
 && npm install --no-save --omit=dev --no-audit --no-fund better-sqlite3@13.2.0

# runtime has node and the built app only: no compiler, no npm install at start.
FROM node:24.22.3-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json openapi.yaml ./
COPY schemas ./schemas
# The dashboard's browser files are served as they are (tsc does not copy them; see src/catalog/ui/bundle.ts).
COPY src/catalog/ui/assets ./src/catalog/ui/assets
# An unprivileged user with a fixed id, matching the manifests' runAsUser.
USER 10001:10001
EXPOSE 8080 5000
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["serve"]
