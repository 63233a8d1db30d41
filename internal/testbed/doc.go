// Package testbed starts and drives the two Ceph clusters ("sites") that Ferry's integration
// tests run against: a source site and a backup site, each a single-host micro-cluster (one mon,
// one bluestore OSD on a sparse file, one mgr, cephx on) with an rbd pool named "ferry".
//
// The clusters are started and stopped by ceph-site.sh, which is embedded here and is also what
// devenv.sh (make devenv) runs; this package only picks free loopback ports, runs the script for
// both sites in parallel and wraps the rbd and ceph command-line tools. It uses no cgo.
//
// A test package uses it from TestMain:
//
//	func TestMain(m *testing.M) { testbed.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		bed := testbed.Shared(t)
//		img := testbed.ImageName(t, "")
//		bed.Source.CreateImage(t, img, 64<<20)
//		...
//	}
//
// The first call of Shared starts a fresh pair in a temporary directory (about 5-15 s), which Main
// stops when the tests end, or reuses the pair that `make devenv` started when FERRY_TESTBED
// names its directory: tests that do not call it run without Ceph. Tests share the pair: give
// every image a name from ImageName so that tests do not collide.
//
// Every daemon, file and port of a bed belongs to it: several test binaries (or a devenv and
// tests) run side by side on one machine. If a test binary dies without stopping its bed, a
// watcher stops the daemons. FERRY_TESTBED_KEEP=1 keeps the directory (logs under
// SITE/log/) of a failed run.
package testbed
