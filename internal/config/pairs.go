package config

import (
	"fmt"
	"strings"
)

// Pairs is a section whose keys the operator names (pools, image patterns,
// domains), each with one value, in file order:
//
//	pools:
//	  volumes: latest7,days30
//
// The environment writes it NAME=VALUE;NAME=VALUE (a value may hold commas).
type Pairs []Pair

// Pair is one NAME: VALUE line of a Pairs section.
type Pair struct{ Name, Value string }

// String is the environment's form.
func (ps Pairs) String() string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.Name + "=" + p.Value
	}
	return strings.Join(parts, ";")
}

// parsePairs reads the environment's form.
func parsePairs(text string) (Pairs, error) {
	var ps Pairs
	seen := map[string]bool{}
	for _, item := range strings.Split(text, ";") {
		if strings.TrimSpace(item) == "" {
			continue
		}
		name, value, ok := strings.Cut(item, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" {
			return nil, fmt.Errorf("%q: want NAME=VALUE;NAME=VALUE", text)
		}
		if seen[name] {
			return nil, fmt.Errorf("%q: %s given twice", text, name)
		}
		seen[name] = true
		ps = append(ps, Pair{name, value})
	}
	return ps, nil
}
