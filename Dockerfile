# One image for both servers: `serve` (catalog API, default) or `registry` (bundled OCI registry).
#   docker build -t aios-registry-catalog:0.1.0 .
#   docker run -p 8080:8080 aios-registry-catalog:0.1.0            # catalog
#   docker run -p 5000:5000 aios-registry-catalog:0.1.0 registry   # registry

# build compiles better-sqlite3 and the TypeScript, then drops the dev dependencies.
FROM node:24-bookworm AS build
# better-sqlite3 compiles from source (node-gyp): it needs python3, make and g++, which the full
# node image has, and Node's headers, which it has under /usr/local (the repo's .npmrc points at
# /usr for Debian's nodejs package; an npm_config_* variable outranks a project .npmrc, and
# node-gyp reads it from the environment itself, so this holds when npm stops passing nodedir on).
ENV npm_config_nodedir=/usr/local
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# runtime has node and the built app only: no compiler, no npm install at start.
FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json openapi.yaml ./
COPY schemas ./schemas
# An unprivileged user with a fixed id, matching the manifests' runAsUser.
USER 10001:10001
EXPOSE 8080 5000
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["serve"]
