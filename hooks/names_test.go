package hooks

import (
	"strings"
	"testing"
)

// TestDiscoverRefusesBadImageNames: a disk whose image name Ferry does not
// take fails discovery, before any snapshot is taken (the publisher would
// refuse the event, and the snapshot would stay for good).
func TestDiscoverRefusesBadImageNames(t *testing.T) {
	for name, want := range map[string]string{
		"vms/a&#9;b":                      `image name "a\tb": contains the non-printable character U+0009`,
		"vms/a\u202eb":                    `U+202E`,
		"vms/" + strings.Repeat("x", 300): `300 bytes long`,
	} {
		xml := `<domain type='kvm'><name>bad</name><devices><disk type='network' device='disk'>
<source protocol='rbd' name='` + name + `'/><target dev='vda'/></disk></devices></domain>`
		_, err := ParseDomainXML(xml)
		if err == nil || !strings.Contains(err.Error(), "disk vda") || !strings.Contains(err.Error(), want) {
			t.Errorf("disk %q: %v, want an error saying %s", name, err, want)
		}
	}
	vm, err := ParseDomainXML(`<domain type='kvm'><name>nova</name><uuid>11111111-2222-3333-4444-555555555555</uuid><devices><disk type='network' device='disk'>
<source protocol='rbd' name='vms/11111111-2222-3333-4444-555555555555_disk.local'/><target dev='vdb'/></disk></devices></domain>`)
	if err != nil || len(vm.Disks) != 1 || !vm.Disks[0].Ephemeral {
		t.Fatalf("Nova's ephemeral disk: %+v, %v", vm, err)
	}
}
