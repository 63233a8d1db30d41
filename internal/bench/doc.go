// Package bench measures Ferry against the rbd tool and the seed pipeline
// (rbd export-diff | gzip | gunzip | rbd import-diff) on the real two-site
// test bed, and prints one Markdown report: `make bench`.
//
// Everything runs as subprocesses (the ferry binary, rbd, bash pipelines), so
// that each row's peak RSS is the process's own (wait4's ru_maxrss), and every
// figure of a row is measured in the same run, on the same clusters and data,
// side by side: compare the ratios, not the absolute figures, on a shared machine.
//
// The benchmark lives in the package's tests (BenchmarkTable). Its TestMain
// starts the test bed only when benchmarks were asked for, so `go test ./...`
// stays fast. The report states the targets next to the figures; it does not
// assert them. It fails only when a backup or an import differs from its source.
//
// BenchmarkWAN (make bench-wan, also part of make bench) puts an emulated WAN
// link (internal/wanlink) between the two sites and runs a full backup and
// two incrementals through it at several round-trip times and a bandwidth
// limit, Ferry beside the seed pipeline, with the bytes counted at the link.
package bench
