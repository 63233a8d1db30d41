package hooks

import (
	"encoding/xml"
	"fmt"
	"net"
	"strings"

	"github.com/ferry-dr/ferry/internal/ferry"
	"libvirt.org/go/libvirtxml"
)

// VM is what Ferry needs to know about one libvirt domain.
type VM struct {
	Name     string
	UUID     string // libvirt domain UUID; for Nova guests also the instance UUID
	Instance *NovaInstance
	Disks    []Disk
}

// NovaInstance is the identity Nova writes into the domain's metadata.
type NovaInstance struct {
	UUID        string
	Name        string
	ProjectID   string
	ProjectName string
	UserID      string
}

// Disk is one RBD network disk of a VM.
type Disk struct {
	Target   string          // guest device, e.g. vda
	Image    ferry.ImageSpec // pool/image, Snap empty
	Monitors []string        // host:port of the monitors libvirt passes to QEMU
	User     string          // cephx user (without "client.")
	// OpenStack identity: a Cinder volume or a Nova ephemeral disk.
	VolumeID  string // from an image named volume-<uuid>
	Ephemeral bool   // image named <instance uuid>_disk[...]
}

// Specs returns the image specs of the VM's disks, in domain order.
func (vm VM) Specs() []string {
	out := make([]string, len(vm.Disks))
	for i, d := range vm.Disks {
		out[i] = d.Image.String()
	}
	return out
}

// ParseDomainXML reads a VM's RBD disks and Nova identity from a domain
// definition. Disks that are not RBD (local files, CD-ROMs) are ignored:
// Ferry cannot back them up.
func ParseDomainXML(domainXML string) (VM, error) {
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(domainXML); err != nil {
		return VM{}, fmt.Errorf("parse domain XML: %w", err)
	}
	vm := VM{Name: dom.Name, UUID: dom.UUID}
	if dom.Metadata != nil {
		inst, err := parseNovaMetadata(dom.Metadata.XML)
		if err != nil {
			return VM{}, fmt.Errorf("domain %s: %w", dom.Name, err)
		}
		if inst != nil {
			inst.UUID = dom.UUID // Nova uses the instance UUID as the domain UUID
			vm.Instance = inst
		}
	}
	if dom.Devices == nil {
		return vm, nil
	}
	for _, d := range dom.Devices.Disks {
		if d.Source == nil || d.Source.Network == nil || d.Source.Network.Protocol != "rbd" {
			continue
		}
		if d.Device == "cdrom" || d.Device == "floppy" {
			continue
		}
		disk, err := rbdDisk(d)
		if err != nil {
			return VM{}, fmt.Errorf("domain %s: %w", dom.Name, err)
		}
		switch {
		case strings.HasPrefix(disk.Image.Image, "volume-"):
			disk.VolumeID = strings.TrimPrefix(disk.Image.Image, "volume-")
		case vm.UUID != "" && strings.HasPrefix(disk.Image.Image, vm.UUID+"_disk"):
			disk.Ephemeral = true
		}
		vm.Disks = append(vm.Disks, disk)
	}
	return vm, nil
}

func rbdDisk(d libvirtxml.DomainDisk) (Disk, error) {
	n := d.Source.Network
	var disk Disk
	if d.Target != nil {
		disk.Target = d.Target.Dev
	}
	// rbd names are pool/image or pool/namespace/image, optionally @snap.
	name, _, _ := strings.Cut(n.Name, "@")
	parts := strings.Split(name, "/")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return Disk{}, fmt.Errorf("disk %s: rbd source %q: want pool/image (namespaces are not supported)", disk.Target, n.Name)
	}
	disk.Image = ferry.ImageSpec{Pool: parts[0], Image: parts[1]}
	// Refused here, before a snapshot: the publisher would refuse its event,
	// and nothing would ever prune the snapshot.
	if err := disk.Image.Validate(); err != nil {
		return Disk{}, fmt.Errorf("disk %s: rbd source: %w; Ferry cannot back up this VM", disk.Target, err)
	}
	for _, h := range n.Hosts {
		if h.Name == "" {
			continue
		}
		if h.Port != "" {
			disk.Monitors = append(disk.Monitors, net.JoinHostPort(h.Name, h.Port))
		} else {
			disk.Monitors = append(disk.Monitors, h.Name)
		}
	}
	// The auth element sits inside <source> (current) or on <disk> (older).
	auth := n.Auth
	if auth == nil {
		auth = d.Auth
	}
	if auth != nil {
		disk.User = auth.Username
	}
	return disk, nil
}

// novaNamespaces are the namespaces Nova has used for its instance metadata.
var novaNamespaces = map[string]bool{
	"http://openstack.org/xmlns/libvirt/nova/1.0": true,
	"http://openstack.org/xmlns/libvirt/nova/1.1": true,
}

type novaMetadata struct {
	XMLName xml.Name
	Name    string `xml:"name"`
	Owner   struct {
		User struct {
			UUID string `xml:"uuid,attr"`
		} `xml:"user"`
		Project struct {
			UUID string `xml:"uuid,attr"`
			Name string `xml:",chardata"`
		} `xml:"project"`
	} `xml:"owner"`
}

// parseNovaMetadata finds the nova:instance element among the metadata
// children; it returns nil when there is none (not a Nova guest).
func parseNovaMetadata(inner string) (*NovaInstance, error) {
	dec := xml.NewDecoder(strings.NewReader(inner))
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil // end of metadata: no Nova element
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if start.Name.Local != "instance" || !novaNamespaces[start.Name.Space] {
			if err := dec.Skip(); err != nil {
				return nil, fmt.Errorf("parse metadata: %w", err)
			}
			continue
		}
		var m novaMetadata
		if err := dec.DecodeElement(&m, &start); err != nil {
			return nil, fmt.Errorf("parse nova:instance metadata: %w", err)
		}
		return &NovaInstance{
			Name:        strings.TrimSpace(m.Name),
			ProjectID:   m.Owner.Project.UUID,
			ProjectName: strings.TrimSpace(m.Owner.Project.Name),
			UserID:      m.Owner.User.UUID,
		}, nil
	}
}
