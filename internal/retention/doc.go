// Package retention decides which backup snapshots a policy keeps, and which
// policy applies to which image. It is pure: internal/recovery applies its
// decisions to a backup cluster, and the backup site's consumer daemon runs
// it on an interval (see recovery.RetentionLoop).
package retention
