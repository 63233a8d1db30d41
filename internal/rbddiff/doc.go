// Package rbddiff reads and writes the incremental diff streams of Ceph RBD
// ("rbd diff v1", written by rbd export-diff, and "rbd diff v2", the per-snapshot
// diffs inside rbd export --export-format 2).
//
// A diff is a banner, metadata records (from/to snapshot, image size, and in v2
// the protection status), then ascending extents ('w' data, 'z' zeroes), then an
// end record. Reader and Writer stream it record by record: payloads pass
// straight through a bounded buffer, so memory stays constant whatever the size
// of the diff or the lengths it claims.
//
// Source and Sink are the project's shared view of a diff: a Reader is a Source,
// a Writer is a Sink, and a network pipeline can stand in for either. Both sides
// validate the stream (order, bounds, record shape) and report problems as a
// *FormatError carrying the byte offset, so a corrupt or truncated diff is never
// applied to an image.
package rbddiff
