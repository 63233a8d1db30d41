package retention

import (
	"fmt"
	"path"
	"strings"

	"github.com/ferry-dr/ferry/internal/ferry"
)

// Rules choose each image's policy, in the spirit of `rbd mirror snapshot
// schedule` (a global one, overridden per pool or image): the first image
// rule whose pattern matches, else the rule of the image's pool, else
// Default. Patterns name source images, as `ferry status` lists them.
type Rules struct {
	Default Policy // nil: an image no rule names keeps every snapshot
	Pools   map[string]Policy
	Images  []ImageRule // tried in order
}

// ImageRule gives the images that match Pattern their own policy.
type ImageRule struct {
	Pattern string // POOL/IMAGE with shell wildcards (*, ?, [a-z]), e.g. volumes/db-*
	Policy  Policy
}

// For returns image's policy and which rule chose it ("default",
// "pool volumes", "image volumes/db-*"); false when none applies.
func (r Rules) For(image ferry.ImageSpec) (Policy, string, bool) {
	name := image.Pool + "/" + image.Image
	for _, ir := range r.Images {
		if ok, _ := path.Match(ir.Pattern, name); ok {
			return ir.Policy, "image " + ir.Pattern, true
		}
	}
	if p, ok := r.Pools[image.Pool]; ok {
		return p, "pool " + image.Pool, true
	}
	if r.Default != nil {
		return r.Default, "default", true
	}
	return nil, "", false
}

// Empty tells whether the rules give no image a policy.
func (r Rules) Empty() bool { return r.Default == nil && len(r.Pools) == 0 && len(r.Images) == 0 }

// CheckPattern checks an image rule's pattern: POOL/IMAGE, either part
// with shell wildcards.
func CheckPattern(pattern string) error {
	pool, image, ok := strings.Cut(pattern, "/")
	if !ok || pool == "" || image == "" || strings.Contains(image, "/") {
		return fmt.Errorf("%q: want POOL/IMAGE, either part with wildcards, e.g. volumes/db-* (a pool on its own goes under pools)", pattern)
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return fmt.Errorf("%q: bad wildcard pattern (%v); write e.g. volumes/db-* or volumes/vm-[0-9]*", pattern, err)
	}
	return nil
}
