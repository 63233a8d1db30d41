package hooks

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-dr/ferry/internal/virt"
)

// Discovery reads the definition back from libvirt (not the XML the test
// wrote), so it also proves libvirt keeps the RBD source and Nova metadata.
func TestDiscoverThroughLibvirt(t *testing.T) {
	sourceMonitor := monitorOf(t)
	hv := openTestDriver(t)
	v := defineVM(t, hv, 3, 1<<20)
	dom, err := hv.Domain(v.name)
	if err != nil {
		t.Fatal(err)
	}
	if dom.State != virt.StateShutoff || dom.UUID != v.uuid {
		t.Fatalf("domain %s: state %s uuid %s, want shut off, %s", v.name, dom.State, dom.UUID, v.uuid)
	}
	vm, err := ParseDomainXML(dom.XML)
	if err != nil {
		t.Fatal(err)
	}
	if vm.Name != v.name || vm.UUID != v.uuid {
		t.Fatalf("vm %q/%q, want %q/%q", vm.Name, vm.UUID, v.name, v.uuid)
	}
	if vm.Instance == nil {
		t.Fatal("no Nova instance found in the metadata")
	}
	want := NovaInstance{UUID: v.uuid, Name: "web-" + v.name, ProjectID: "0123456789abcdef0123456789abcdef", ProjectName: "demo", UserID: "7d0e1e3a2b5c4f8e9a1b2c3d4e5f6a7b"}
	if *vm.Instance != want {
		t.Fatalf("instance %+v, want %+v", *vm.Instance, want)
	}
	if len(vm.Disks) != 3 {
		t.Fatalf("%d disks, want 3 (the cdrom is not RBD): %+v", len(vm.Disks), vm.Disks)
	}
	for i, d := range vm.Disks {
		if d.Image != v.disks[i] || d.Target != "vd"+string(rune('a'+i)) || d.User != "admin" ||
			!slices.Equal(d.Monitors, []string{sourceMonitor}) {
			t.Errorf("disk %d: %+v, want %s on %s as admin", i, d, v.disks[i], sourceMonitor)
		}
	}
	if !vm.Disks[0].Ephemeral || vm.Disks[0].VolumeID != "" {
		t.Errorf("disk 0 (%s) should be the Nova ephemeral disk: %+v", vm.Disks[0].Image, vm.Disks[0])
	}
	for _, d := range vm.Disks[1:] {
		if d.Ephemeral || "volume-"+d.VolumeID != d.Image.Image {
			t.Errorf("disk %s should be Cinder volume: %+v", d.Image, d)
		}
	}

	all, err := hv.Domains()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(all, func(d virt.Domain) bool { return d.Name == v.name }) {
		t.Fatalf("Domains() misses %s", v.name)
	}
	if _, err := hv.Domain("no-such-domain"); !errors.Is(err, virt.ErrNoDomain) {
		t.Fatalf("lookup of a missing domain: %v, want ErrNoDomain", err)
	}
}

func TestParseDomainXMLVariants(t *testing.T) {
	for _, tc := range []struct {
		name, xml string
		check     func(t *testing.T, vm VM, err error)
	}{
		{"auth on the disk (older libvirt), no port, no metadata", `<domain type='kvm'><name>old</name><uuid>11111111-2222-3333-4444-555555555555</uuid>
<devices><disk type='network' device='disk'><auth username='cinder'><secret type='ceph' uuid='x'/></auth>
<source protocol='rbd' name='volumes/volume-abc@snap1'><host name='10.0.0.1'/><host name='10.0.0.2' port='6789'/></source><target dev='vdb'/></disk></devices></domain>`,
			func(t *testing.T, vm VM, err error) {
				if err != nil {
					t.Fatal(err)
				}
				if vm.Instance != nil || len(vm.Disks) != 1 {
					t.Fatalf("%+v", vm)
				}
				d := vm.Disks[0]
				if d.Image.String() != "volumes/volume-abc" || d.User != "cinder" || d.VolumeID != "abc" ||
					!slices.Equal(d.Monitors, []string{"10.0.0.1", "10.0.0.2:6789"}) {
					t.Fatalf("%+v", d)
				}
			}},
		{"namespaced rbd name is refused", `<domain type='kvm'><name>ns</name><devices><disk type='network' device='disk'>
<source protocol='rbd' name='pool/ns/img'/><target dev='vda'/></disk></devices></domain>`,
			func(t *testing.T, vm VM, err error) {
				if err == nil || !strings.Contains(err.Error(), "namespaces") {
					t.Fatalf("err %v, want a refusal naming namespaces", err)
				}
			}},
		{"no devices", `<domain type='kvm'><name>empty</name></domain>`,
			func(t *testing.T, vm VM, err error) {
				if err != nil || len(vm.Disks) != 0 {
					t.Fatalf("%+v %v", vm, err)
				}
			}},
		{"not XML", `<domain`, func(t *testing.T, vm VM, err error) {
			if err == nil {
				t.Fatal("parsed broken XML")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm, err := ParseDomainXML(tc.xml)
			tc.check(t, vm, err)
		})
	}
}
