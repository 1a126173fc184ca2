// Package integration holds postbox's integration tests: the real broker on
// a real Unix socket, in-process and as a separate `postbox serve` process,
// driven by Go clients, raw protocol connections, child processes (the CLI
// binary, or the test binary re-executed in a client role, under another
// uid where the rule is about permissions) and signals. Each test is named
// after the rule of the protocol or the CLI that it checks.
//
// The package has no non-test code besides this comment. Run it with
//
//	go test -race ./integration/
//
// Tests that need root (permissions across uids) skip otherwise.
package integration
