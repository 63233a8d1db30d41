package main

import (
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/buildinfo"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/recovery"
	"github.com/ferry-dr/ferry/internal/retention"
)

// TestReportsAreSnakeCase: every key a command prints with --json is
// snake_case and named by a tag, down to the nested structs, so no Go field
// name leaks into what scripts read.
func TestReportsAreSnakeCase(t *testing.T) {
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	seen := map[reflect.Type]bool{}
	var check func(path string, typ reflect.Type)
	check = func(path string, typ reflect.Type) {
		for typ.Kind() == reflect.Slice || typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || typ.PkgPath() == "time" || seen[typ] {
			return
		}
		seen[typ] = true
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if !snake.MatchString(name) {
				t.Errorf("%s.%s: JSON key %q is not snake_case (give it a json tag)", path, f.Name, name)
			}
			check(path+"."+name, f.Type)
		}
	}
	for _, v := range []any{backupReport{}, verifyReport{}, scrubReport{}, retentionReport{}, diffReport{}, restoreReport{},
		configReport{}, buildinfo.Info{}} {
		check(reflect.TypeOf(v).Name(), reflect.TypeOf(v))
	}
}

// TestRetentionReport: each snapshot appears once, with what became of it.
func TestRetentionReport(t *testing.T) {
	at := time.Date(2026, 12, 1, 2, 0, 0, 0, time.FixedZone("CET", 3600))
	res := recovery.RetentionResult{
		Keep:      []retention.SnapshotWithTime{{Name: "ferry-a", Time: at, Pinned: true}},
		Remove:    []retention.SnapshotWithTime{{Name: "ferry-b", Time: at}, {Name: "ferry-c", Time: at}, {Name: "ferry-d", Time: at}},
		NotFerrys: []string{"manual"},
		Removed:   []string{"ferry-b"},
		Failed:    []recovery.RemovalFailure{{Name: "ferry-c", Err: errors.New("has clones")}},
	}
	got := newRetentionReport(ferry.ImageSpec{Pool: "rbd", Image: "vm"}, "latest1", false, res)
	want := []retentionSnapshot{
		{Name: "ferry-a", Time: at.UTC(), Decision: "keep", Pinned: true},
		{Name: "ferry-b", Time: at.UTC(), Decision: "removed"},
		{Name: "ferry-c", Time: at.UTC(), Decision: "failed", Error: "has clones"},
		{Name: "ferry-d", Time: at.UTC(), Decision: "remove"},
	}
	if got.Image != "rbd/vm" || !reflect.DeepEqual(got.Snapshots, want) || !reflect.DeepEqual(got.NotFerrys, []string{"manual"}) {
		t.Fatalf("got %+v, want image rbd/vm, snapshots %+v", got, want)
	}

	// --all: an image without a policy is listed with none; a failure is
	// the image's error and the command's.
	fail := errors.New("no such Ferry snapshot")
	reports, err := newRetentionReports([]recovery.ImageRetention{
		{Image: ferry.ImageSpec{Pool: "rbd", Image: "vm"}, Rule: "default", Result: res, Err: fail},
		{Image: ferry.ImageSpec{Pool: "rbd", Image: "other"}},
	}, true)
	if err != fail || len(reports) != 2 || reports[0].Error != fail.Error() || reports[0].Rule != "default" ||
		reports[1].Policy != "" || len(reports[1].Snapshots) != 0 {
		t.Fatalf("reports %+v, error %v", reports, err)
	}
}
