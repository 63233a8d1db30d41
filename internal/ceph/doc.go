// Package ceph is Ferry's only door to librados and librbd (through go-ceph;
// build with -tags pacific against Ceph 16). It owns the cluster connection,
// the snapshot operations, and the native diff engine:
//
//   - Export walks the changes of an image between two snapshots with a
//     two-pass DiffIterate (whole objects first, then fine-grained inside the
//     changed objects only), reads the changed extents with several reads in
//     flight, splits out all-zero blocks at a 4 KiB grain, and hands an ordered
//     diff to an rbddiff.Sink.
//   - Import applies an rbddiff.Source to an image with several writes in
//     flight, zeroing with real zeroing discards, and creates the to-snapshot
//     only after every write has landed.
//
// Everything above this package speaks rbddiff records and ferry.ImageSpec,
// never cgo.
package ceph
