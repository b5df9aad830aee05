#!/usr/bin/env bash
# Installs the Debian packages the integration tests start (skopeo, CNCF Distribution, openssl, buildah,
# chromium for the browser tests, kubectl for rendering kustomize overlays offline) when they are
# missing. As root it installs them; otherwise it names what to install and fails.
set -euo pipefail

declare -A needed=(
  [skopeo]=skopeo
  [docker-registry]=docker-registry
  [openssl]=openssl
  [buildah]=buildah
  [chromium]=chromium
  [kubectl]=kubectl
)
missing=()
for command in "${!needed[@]}"; do
  command -v "$command" >/dev/null 2>&1 || missing+=("${needed[$command]}")
done
if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
  echo "test setup: Go (1.24 or newer) is required to build FerretDB, the OCI conformance suite and the deploy checker; install it from https://go.dev/dl/" >&2
  exit 1
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "test setup: missing Debian packages: ${missing[*]}. Install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "test setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
