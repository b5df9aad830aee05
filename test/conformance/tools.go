//go:build tools

// Package conformance pins the official OCI distribution-spec conformance suite (release v1.1.1,
// commit a139cc423184af6078077b9b7ee336eddbd03f8f) so `go test -c` can build its tests.
package conformance

import _ "github.com/opencontainers/distribution-spec/conformance"
