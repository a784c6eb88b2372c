// Package reliability holds Drover's reliability suite: scenarios that
// crash, duplicate, reorder, poison and starve the pipeline and count what
// happened to every task (lost, run twice, ended wrong). The scenarios are
// tests (see reliability_test.go); this package's non-test code is what the
// reliability runner binary (cmd/relrunner) shares with them: functions that
// record each execution, and a topic wrapper that crashes a runner right
// after it has published an outcome.
//
// Run the full suite with `make reliability` (RELIABILITY_SCALE=full); the
// small variant runs inside `go test ./...`. docs/reliability.md has the
// last full table and how each scenario injects its fault.
package reliability
