package ferry

import (
	"strings"
	"testing"
)

// TestValidateJobID: a job id becomes one subject token; anything that
// would split or widen the subject is refused.
func TestValidateJobID(t *testing.T) {
	if err := ValidateJobID("restore-20260101T000000Z-0123456789ab"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "a.b", "a*", ">", "a b", "a\x1b", strings.Repeat("a", 129)} {
		if ValidateJobID(id) == nil {
			t.Errorf("job id %q taken", id)
		}
	}
}
