// Package bus owns Ferry's use of NATS JetStream: the embedded server, the
// connection, and the one place where every subject, stream and key-value
// bucket is declared (topology.go), with its retention and why.
//
// Two JetStream domains take part. The source domain holds the snapshot
// events the hooks publish; the backup domain holds everything that must
// reach the backup site (chunks, manifests) and what the backup site knows
// (image state, results). On one machine both are the same server; across
// sites, the source server joins the backup server as a leafnode and clients
// address the backup domain by name.
package bus
