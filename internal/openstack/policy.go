package openstack

import (
	"context"
	"fmt"
	"sort"

	"github.com/gophercloud/gophercloud/v2/openstack/blockstorage/v3/volumes"
)

// PolicyVolume is a volume that opted into a backup policy.
type PolicyVolume struct {
	ID, Name, Status string
	Servers          []string // ids of the servers it is attached to
}

// RBDImage is the name Cinder's RBD driver gives the volume's image.
func (v PolicyVolume) RBDImage() string { return "volume-" + v.ID }

// VolumesWithPolicy lists the volumes whose metadata says ferry:policy=name,
// in the credentials' project (all projects with allProjects, which needs an
// admin role). Cinder filters on the server; the result is checked again
// here because a Cinder that does not allow the metadata filter for its
// users ignores it.
func VolumesWithPolicy(ctx context.Context, c *Clients, name string, allProjects bool) ([]PolicyVolume, error) {
	pages, err := volumes.List(c.Volume, volumes.ListOpts{
		Metadata:   map[string]string{KeyPolicy: name},
		AllTenants: allProjects,
	}).AllPages(ctx)
	if err != nil {
		return nil, fmt.Errorf("list volumes with %s=%s: %w", KeyPolicy, name, err)
	}
	vols, err := volumes.ExtractVolumes(pages)
	if err != nil {
		return nil, fmt.Errorf("list volumes with %s=%s: %w", KeyPolicy, name, err)
	}
	var out []PolicyVolume
	for _, v := range vols {
		if v.Metadata[KeyPolicy] != name {
			continue
		}
		pv := PolicyVolume{ID: v.ID, Name: v.Name, Status: v.Status}
		for _, a := range v.Attachments {
			pv.Servers = append(pv.Servers, a.ServerID)
		}
		out = append(out, pv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
