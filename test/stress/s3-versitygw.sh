#!/usr/bin/env bash
# The S3 tests again, against a fuller S3 server than gofakes3: Versity Gateway v1.8.0 on a POSIX
# directory (real multipart uploads, conditional writes, fsynced objects; `go install`ed into
# .cache/bin on first use, about 5 minutes on 2 cores). Not part of `npm test` for that build
# time and its speed (each object is a file with xattrs: the conformance suite takes minutes).
#
#   bash test/stress/s3-versitygw.sh [ROUNDS]     # ROUNDS of replica SIGKILLs, default 10
#
# Runs the driver contract suite, conformance and skopeo on S3, the replica cases, the
# pull-through cache on S3, then the SIGKILL rounds of test/stress/s3-replicas.ts (outside
# mocha's per-test timeout). The S3 overlay's run is left out: it uses the example Secret's
# credentials, which only gofakes3 (checking none) accepts.
set -euo pipefail
cd "$(dirname "$0")/../.."
export S3_TEST_SERVER=versitygw
npx mocha --grep 'SIGKILL of a replica' --invert \
  test/contract/oci/storage-driver.test.ts \
  test/integration/oci/s3-storage.test.ts \
  test/integration/oci/s3-replicas.test.ts \
  test/integration/oci/proxy-s3.test.ts
node --import tsx test/stress/s3-replicas.ts --rounds "${1:-10}"
