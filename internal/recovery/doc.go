// Package recovery holds Ferry's disaster-recovery operations on backup
// images: restore (failover into a new image, failback into the primary
// image, in full or incrementally from a snapshot both sites hold), verify (a
// backup snapshot against its source, by content hashes), retention (which
// backup snapshots to keep under a policy like "latest3,days7,weeks4"), and
// drill (a restore into a scratch image, checked against the recorded chunk
// hashes and the backup snapshot, then removed).
//
// Restore and verify only read through internal/ceph's diff engine: restore
// pipes an Export straight into an Import (handoff, no copy, no file), or,
// into the source site over JetStream, stores the Export in the backup
// site's chunk store (SendRestore) for the source site's publisher daemon
// to Import (ApplyRestoreJob), the backup pipeline in reverse; and
// verify hashes two Exports, one per cluster, side by side. Each Export keeps
// several reads in flight on its own cluster and a bounded number of 4 MiB
// buffers, so memory stays small whatever the image size.
package recovery
