package main

import (
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/ferry-dr/ferry/internal/buildinfo"
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
