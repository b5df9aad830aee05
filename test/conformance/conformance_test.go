// Package conformance builds the official OCI distribution-spec conformance suite as a test binary.
// The suite's tests live in the required module; importing it for side effects registers them.
package conformance
