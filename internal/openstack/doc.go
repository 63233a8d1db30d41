// Package openstack tells OpenStack what Ferry knows: it writes each disk's
// backup status into the metadata of its Cinder volume (or, for a Nova
// ephemeral disk, of its Nova server) through Gophercloud, and reads the
// volumes that opted into a backup policy.
//
// The parts:
//   - auth.go: clients from clouds.yaml, OS_* variables, or a noauth Cinder.
//   - metadata.go: merge-only metadata writes. Gophercloud has no metadata
//     calls, and volumes.Update replaces every key, so writes POST only the
//     keys Ferry owns and never touch an operator's keys.
//   - status.go: which resource an image belongs to, and the ferry:* keys.
//   - syncer.go: a daemon that watches the state bucket (ferry-state) and
//     writes each image's status, retrying with exponential backoff. Its only
//     input is the bucket, so it never slows down or blocks a backup.
//   - policy.go: volumes that carry ferry:policy=<name>.
package openstack
