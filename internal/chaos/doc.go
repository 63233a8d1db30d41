// Package chaos tests that backups converge under faults, as an operator's
// hosts meet them: the real ferry binaries run as processes (a NATS server
// per site joined by a leafnode, the publisher and consumer daemons), a
// supervisor in the test starts again whatever exits, as systemd's
// Restart=on-failure with RestartSec=1 does, and a seeded random schedule
// kills (kill -9) and stops (SIGSTOP) them, and kills the Ceph OSDs, while
// snapshot events are queued as the hooks do. Once the faults stop, every
// image's last snapshot must be confirmed and byte-identical at both sites
// with no manual step.
//
// The package has only tests. TestChaos runs for FERRY_CHAOS_DURATION of
// faults (default 2m) from FERRY_CHAOS_SEED (default 1); `make chaos` runs
// it longer. OSDs are killed only on a test bed this test binary started
// itself, never on a shared one (FERRY_TESTBED), which others' tests use.
package chaos
