// Package rpcfault holds the fault tests of package rpc: thousands of
// calls per invocation semantics through a fault-injection layer between
// client and broker (internal/faultconn: requests dropped, replies
// dropped, requests duplicated, frames delayed, all from a fixed seed),
// and real server processes killed with SIGKILL mid-call. Every handler
// execution appends one line to an execution log; the tests count the
// executions of each call from that log and check them against what the
// call's semantics promises:
//
//	maybe          at most one execution per call
//	at-least-once  at least one execution for every call that succeeded
//	exactly-once   exactly one execution for every call while its server
//	               lives; never twice on one server. Across a server
//	               crash, or when a retry reaches another server of the
//	               service, a call may run again on another server: the
//	               reply cache is in one server's memory (package rpc's
//	               "What survives a server crash")
//
// Besides the counts (faults_test.go: thousands of calls through
// faultconn; crash_test.go: server processes killed mid-call), targeted
// tests make single faults certain: handlers see their caller's deadline
// and cancellation (deadline_test.go), a request duplicated or replayed
// in transit (duplicate_test.go), an exactly-once reply cache at its
// bound (cache_test.go), and a server's answer to a timed-out attempt
// reaching the retry (retry_test.go). Every test logs what it counted.
//
// The server processes are this test binary re-executed in a server role
// (POSTBOX_RPCFAULT_ROLE=server), as package integration does for its
// client roles. The package has no non-test code besides this comment.
// Run it with
//
//	go test -race ./integration/rpcfault/
//	go test -race ./integration/rpcfault/ -rpcfault.calls=50000 -rpcfault.seed=7
package rpcfault
