package openstack

import (
	"context"
	"fmt"

	"github.com/gophercloud/gophercloud/v2/openstack/blockstorage/v3/volumes"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
)

// PolicySource finds the disks that opted into a backup policy: Cinder
// volumes and (with Nova) servers whose metadata has ferry:policy. It is
// the agent's hooks.PolicySource.
//
// Unlike VolumesWithPolicy it does not filter by a policy name on the
// server: the agent must also see names it does not define (a typo in the
// metadata) to tell the operator, so it lists the volumes and keeps those
// with the key.
type PolicySource struct {
	Clients     *Clients
	AllProjects bool // every project's volumes and servers; needs an admin role
}

// Policies maps volume ids and server ids to their ferry:policy value.
func (s PolicySource) Policies(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	pages, err := volumes.List(s.Clients.Volume, volumes.ListOpts{AllTenants: s.AllProjects}).AllPages(ctx)
	if err != nil {
		return nil, fmt.Errorf("list volumes for %s: %w (check the Block Storage endpoint and the credentials' project)", KeyPolicy, err)
	}
	vols, err := volumes.ExtractVolumes(pages)
	if err != nil {
		return nil, fmt.Errorf("list volumes for %s: %w", KeyPolicy, err)
	}
	for _, v := range vols {
		if p := v.Metadata[KeyPolicy]; p != "" {
			out[v.ID] = p
		}
	}
	if s.Clients.Compute == nil {
		return out, nil // noauth Cinder: no Nova
	}
	pages, err = servers.List(s.Clients.Compute, servers.ListOpts{AllTenants: s.AllProjects}).AllPages(ctx)
	if err != nil {
		return nil, fmt.Errorf("list servers for %s: %w (check the Compute endpoint and the credentials' project)", KeyPolicy, err)
	}
	srvs, err := servers.ExtractServers(pages)
	if err != nil {
		return nil, fmt.Errorf("list servers for %s: %w", KeyPolicy, err)
	}
	for _, sv := range srvs {
		if p := sv.Metadata[KeyPolicy]; p != "" {
			out[sv.ID] = p
		}
	}
	return out, nil
}
