package authz

import (
	"fmt"
	"slices"
	"sort"
)

// Permissions on one resource are policy lines (subject, resource, action)
// beside the seeded ones: what an experiment's auth_policy.custom_resource
// and custom_actions ask of its users. Who may write which resource is the
// caller's decision (the auth service's); this file only keeps the lines.

// Holding is what one subject holds on a resource.
type Holding struct {
	Subject string
	Actions []string
}

// Holders lists who holds which actions on obj, by subject, actions sorted.
func (en *Enforcer) Holders(obj string) ([]Holding, error) {
	lines, err := en.e.GetFilteredPolicy(1, obj)
	if err != nil {
		return nil, fmt.Errorf("read policies on %s: %w", obj, err)
	}
	by := map[string][]string{}
	for _, l := range lines {
		if len(l) >= 3 && l[1] == obj {
			by[l[0]] = append(by[l[0]], l[2])
		}
	}
	out := make([]Holding, 0, len(by))
	for sub, acts := range by {
		sort.Strings(acts)
		out = append(out, Holding{Subject: sub, Actions: slices.Compact(acts)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Subject < out[j].Subject })
	return out, nil
}

// Grant gives sub each of acts on obj, saving and announcing the change;
// added are the actions sub did not hold before.
func (en *Enforcer) Grant(sub, obj string, acts []string) (added []string, err error) {
	en.mu.Lock()
	defer en.mu.Unlock()
	// Another process may have changed the policy a moment ago, before its
	// announcement arrived: Casbin skips a line it believes is there, so
	// start from the stored policy.
	if err := en.e.LoadPolicy(); err != nil {
		return nil, fmt.Errorf("reload policy: %w", err)
	}
	for _, act := range acts {
		ok, err := en.e.AddPolicy(sub, obj, act)
		if err != nil {
			return added, fmt.Errorf("grant %s on %s to %s: %w", act, obj, sub, err)
		}
		if ok {
			added = append(added, act)
		}
	}
	return added, nil
}

// Revoke takes act on obj from sub, or every action sub holds on obj when
// act is ""; removed are the actions sub held.
func (en *Enforcer) Revoke(sub, obj, act string) (removed []string, err error) {
	en.mu.Lock()
	defer en.mu.Unlock()
	if err := en.e.LoadPolicy(); err != nil {
		return nil, fmt.Errorf("reload policy: %w", err)
	}
	lines, err := en.e.GetFilteredPolicy(0, sub, obj)
	if err != nil {
		return nil, fmt.Errorf("read policies of %s on %s: %w", sub, obj, err)
	}
	for _, l := range lines {
		if len(l) < 3 || l[0] != sub || l[1] != obj || (act != "" && l[2] != act) {
			continue
		}
		ok, err := en.e.RemovePolicy(sub, obj, l[2])
		if err != nil {
			return removed, fmt.Errorf("revoke %s on %s from %s: %w", l[2], obj, sub, err)
		}
		if ok {
			removed = append(removed, l[2])
		}
	}
	sort.Strings(removed)
	return removed, nil
}
