// Package scenario is the harness's coordinator: it checks the target is
// safe to load, starts the workers that hold the client connections (in
// this process, or in child processes when one process's 20,000 file
// descriptors are not enough), runs the idle, fanout and churn scenarios,
// publishes, and merges what the workers measured into a report.Result.
//
// Like the client it drives, it builds on Linux only.
package scenario
