package hooks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// PolicySource says which OpenStack disks opted into a backup policy: it
// maps Cinder volume ids and Nova instance uuids to the policy name their
// metadata carries (ferry:policy). internal/openstack implements it.
type PolicySource interface {
	Policies(ctx context.Context) (map[string]string, error)
}

// DefaultPolicyRefresh is how often the agent asks its PolicySource again.
const DefaultPolicyRefresh = 5 * time.Minute

// policyCallTimeout bounds one refresh (discovery and the source's answer).
const policyCallTimeout = time.Minute

// PolicySchedule backs up one opted-in domain at its policy's interval.
type PolicySchedule struct {
	Domain string // UUID: names can be reused, UUIDs are not
	Name   string // domain name, for logs
	Policy string
	Every  time.Duration
}

// PolicyPlan is what matching a host's VMs to opted-in disks gives.
type PolicyPlan struct {
	Schedules []PolicySchedule // ordered by domain name
	// Notes tell the operator about disagreeing disks and unknown policies;
	// each is a stable sentence, so the agent can log it once.
	Notes []string
}

// PlanPolicies gives each VM the policy of its opted-in disks: a Cinder
// volume by its id, a Nova ephemeral disk by the instance uuid. When disks
// disagree, the shortest interval wins. A policy that is not in policies is
// reported in Notes and does not schedule anything.
func PlanPolicies(vms []VM, tagged map[string]string, policies map[string]time.Duration) PolicyPlan {
	var plan PolicyPlan
	for _, vm := range vms {
		perDisk := map[string]string{} // image -> policy name
		for _, d := range vm.Disks {
			id := d.VolumeID
			if d.Ephemeral {
				id = vm.UUID
			}
			if p, ok := tagged[id]; ok && id != "" && p != "" {
				perDisk[d.Image.String()] = p
			}
		}
		if len(perDisk) == 0 {
			continue
		}
		var best *PolicySchedule
		names := map[string]bool{}
		for _, img := range slices.Sorted(maps.Keys(perDisk)) {
			p := perDisk[img]
			names[p] = true
			every, ok := policies[p]
			if !ok || every <= 0 {
				plan.Notes = append(plan.Notes, fmt.Sprintf(
					"domain %s: disk %s has ferry:policy=%s, which this agent does not define (known: %s); it is not backed up by policy: add --policy %s=INTERVAL or fix the metadata",
					vm.Name, img, p, knownPolicies(policies), p))
				continue
			}
			if best == nil || every < best.Every || every == best.Every && p < best.Policy {
				best = &PolicySchedule{Domain: vm.UUID, Name: vm.Name, Policy: p, Every: every}
			}
		}
		if len(names) > 1 {
			var parts []string
			for _, img := range slices.Sorted(maps.Keys(perDisk)) {
				parts = append(parts, img+"="+perDisk[img])
			}
			chosen := "none of them is defined"
			if best != nil {
				chosen = fmt.Sprintf("using %s (%s), the shortest interval", best.Policy, best.Every)
			}
			plan.Notes = append(plan.Notes, fmt.Sprintf("domain %s: its disks disagree on ferry:policy (%s); %s",
				vm.Name, strings.Join(parts, ", "), chosen))
		}
		if best != nil {
			plan.Schedules = append(plan.Schedules, *best)
		}
	}
	slices.SortFunc(plan.Schedules, func(a, b PolicySchedule) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Domain, b.Domain))
	})
	return plan
}

func knownPolicies(policies map[string]time.Duration) string {
	if len(policies) == 0 {
		return "none"
	}
	var out []string
	for _, p := range slices.Sorted(maps.Keys(policies)) {
		out = append(out, p+"="+policies[p].String())
	}
	return strings.Join(out, ", ")
}

// policyTimers keeps when each opted-in domain is due next.
type policyTimers struct {
	scheds map[string]PolicySchedule // by domain UUID
	next   map[string]time.Time
}

// update takes a new plan. A newly opted-in domain is due one interval
// from now, like a --every schedule; a changed interval counts from the
// domain's last backup (or opt-in), so it is never further away than one
// new interval from now.
func (p *policyTimers) update(scheds []PolicySchedule, now time.Time) {
	if p.scheds == nil {
		p.scheds, p.next = map[string]PolicySchedule{}, map[string]time.Time{}
	}
	keep := map[string]bool{}
	for _, s := range scheds {
		keep[s.Domain] = true
		old, ok := p.scheds[s.Domain]
		p.scheds[s.Domain] = s
		switch {
		case !ok:
			p.next[s.Domain] = now.Add(s.Every)
		case old.Every != s.Every:
			p.next[s.Domain] = p.next[s.Domain].Add(s.Every - old.Every)
		}
	}
	for d := range p.scheds {
		if !keep[d] {
			delete(p.scheds, d)
			delete(p.next, d)
		}
	}
}

// due returns the schedules due at now and sets their next time. A domain
// that missed several intervals is backed up once, not once per interval.
func (p *policyTimers) due(now time.Time) []PolicySchedule {
	var out []PolicySchedule
	for d, next := range p.next {
		if next.After(now) {
			continue
		}
		s := p.scheds[d]
		out = append(out, s)
		p.next[d] = now.Add(s.Every)
	}
	slices.SortFunc(out, func(a, b PolicySchedule) int { return cmp.Compare(a.Domain, b.Domain) })
	return out
}

// wake returns the earliest due time; false when nothing is scheduled.
func (p *policyTimers) wake() (time.Time, bool) {
	var first time.Time
	for _, next := range p.next {
		if first.IsZero() || next.Before(first) {
			first = next
		}
	}
	return first, !first.IsZero()
}

// runPolicies refreshes the plan every PolicyRefresh and queues the backups
// of opted-in domains when they are due, until ctx ends.
func (a *Agent) runPolicies(ctx context.Context) {
	var timers policyTimers
	logged := map[string]bool{}
	refresh := time.NewTimer(0)
	defer refresh.Stop()
	for {
		wait := a.o.PolicyRefresh
		if at, ok := timers.wake(); ok {
			wait = min(wait, time.Until(at))
		}
		wake := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			wake.Stop()
			return
		case <-refresh.C:
			next := a.o.PolicyRefresh
			if plan, err := a.planPolicies(ctx); errors.Is(err, ErrNotConnected) {
				next = min(next, a.o.ReconnectWait) // keepConnected warns about libvirt
			} else if err != nil {
				// Keep the last plan: an API outage must not stop backups.
				a.o.Log.Warn("refresh backup policies; keeping the previous ones", "error", err)
				next = min(next, 30*time.Second)
			} else {
				seen := map[string]bool{}
				for _, n := range plan.Notes {
					seen[n] = true
					if !logged[n] {
						a.o.Log.Warn("backup policy: " + n)
					}
				}
				logged = seen // a note that comes back later is logged again
				for _, s := range plan.Schedules {
					if _, known := timers.scheds[s.Domain]; !known || timers.scheds[s.Domain].Policy != s.Policy {
						a.o.Log.Info("domain opted in", "domain", s.Name, "policy", s.Policy, "every", s.Every)
					}
				}
				timers.update(plan.Schedules, time.Now())
			}
			refresh.Reset(next)
		case <-wake.C:
		}
		wake.Stop()
		for _, s := range timers.due(time.Now()) {
			a.enqueue(job{domain: s.Domain, reason: "policy " + s.Policy + " (every " + s.Every.String() + ")"})
		}
	}
}

// planPolicies discovers the host's domains and matches them to the
// source's opted-in disks.
func (a *Agent) planPolicies(ctx context.Context) (PolicyPlan, error) {
	c := a.Conn()
	if c == nil {
		return PolicyPlan{}, fmt.Errorf("list domains: %w (%s)", ErrNotConnected, a.o.URI)
	}
	doms, err := c.Domains()
	if err != nil {
		return PolicyPlan{}, err
	}
	var vms []VM
	for _, d := range doms {
		vm, err := ParseDomainXML(d.XML)
		if err != nil {
			a.o.Log.Debug("domain skipped for policies", "domain", d.Name, "error", err)
			continue
		}
		vms = append(vms, vm)
	}
	ctx, cancel := context.WithTimeout(ctx, policyCallTimeout)
	defer cancel()
	tagged, err := a.o.PolicySource.Policies(ctx)
	if err != nil {
		return PolicyPlan{}, fmt.Errorf("read opted-in disks: %w", err)
	}
	return PlanPolicies(vms, tagged, a.o.Policies), nil
}
