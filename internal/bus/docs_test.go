package bus_test

import (
	"bufio"
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// designRow is one row of the streams table in docs/design.md, or one
// stream or bucket that SetupSource and SetupBackup create.
type designRow struct {
	kind     string   // "stream", "KV" or "object store"
	domain   string   // "source" or "backup"
	subjects []string // subject prefixes of a stream, sorted; none for buckets
}

// TestDesignTableMatchesTopology: the streams table of docs/design.md names
// every stream and bucket the topology sets up, with its domain and
// subjects, and nothing else; and every stream or bucket constant of
// topology.go is in it. Changing the topology without the table fails here,
// not in an operator's hands.
func TestDesignTableMatchesTopology(t *testing.T) {
	doc := designTable(t, filepath.Join("..", "..", "docs", "design.md"))
	live := setUpTopology(t)
	for name, want := range live {
		got, ok := doc[name]
		switch {
		case !ok:
			t.Errorf("docs/design.md: the streams table lacks %s (%s, %s domain)", name, want.kind, want.domain)
		case got.kind != want.kind || got.domain != want.domain:
			t.Errorf("docs/design.md: %s is a %s in the %s domain in the table, but a %s in the %s domain in topology.go", name, got.kind, got.domain, want.kind, want.domain)
		case !slices.Equal(got.subjects, want.subjects):
			t.Errorf("docs/design.md: %s has subjects %v in the table, but %v in topology.go", name, got.subjects, want.subjects)
		}
	}
	for name := range doc {
		if _, ok := live[name]; !ok {
			t.Errorf("docs/design.md: the streams table names %s, which topology.go does not set up", name)
		}
	}
	for constant, value := range streamAndBucketConstants(t) {
		if _, ok := doc[value]; !ok {
			t.Errorf("docs/design.md: the streams table lacks %s (bus.%s)", value, constant)
		}
	}
}

// designTable reads the table under the heading "## JetStream streams and
// buckets": name (`NAME`, then (KV) or (object store) for a bucket),
// domain, subjects (`ferry.x.<...>`, each a prefix and its tokens).
func designTable(t *testing.T, path string) map[string]designRow {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	name := regexp.MustCompile("^`([^`]+)`(?: \\((KV|object store)\\))?$")
	subject := regexp.MustCompile("`(ferry\\.[a-z]+)\\.<")
	rows := map[string]designRow{}
	in := false
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == "## JetStream streams and buckets"
			continue
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) < 3 {
			t.Fatalf("%s: table row with %d cells: %s", path, len(cells), line)
		}
		m := name.FindStringSubmatch(strings.TrimSpace(cells[0]))
		if m == nil {
			t.Fatalf("%s: first cell %q is not `NAME`, `NAME` (KV) or `NAME` (object store)", path, cells[0])
		}
		row := designRow{kind: "stream", domain: strings.TrimSpace(cells[1])}
		if m[2] != "" {
			row.kind = m[2]
		} else {
			for _, s := range subject.FindAllStringSubmatch(cells[2], -1) {
				row.subjects = append(row.subjects, s[1])
			}
			slices.Sort(row.subjects)
		}
		if _, dup := rows[m[1]]; dup {
			t.Errorf("%s: %s has two rows", path, m[1])
		}
		rows[m[1]] = row
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatalf("%s: no table under \"## JetStream streams and buckets\"", path)
	}
	return rows
}

// setUpTopology runs SetupSource, then SetupBackup, on an empty server and
// reports what each created. JetStream keeps a KV bucket as stream KV_<name>
// and an object store as OBJ_<name>.
func setUpTopology(t *testing.T) map[string]designRow {
	t.Helper()
	srv, err := bus.StartServer(bus.ServerOptions{Name: "design", StoreDir: t.TempDir(), InProcess: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	c, err := bus.Connect(bus.ConnOptions{InProcess: srv, Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx := context.Background()
	live := map[string]designRow{}
	collect := func(domain string, js jetstream.JetStream) {
		streams := js.ListStreams(ctx)
		for info := range streams.Info() {
			row := designRow{kind: "stream", domain: domain}
			name := info.Config.Name
			switch {
			case strings.HasPrefix(name, "KV_"):
				name, row.kind = strings.TrimPrefix(name, "KV_"), "KV"
			case strings.HasPrefix(name, "OBJ_"):
				name, row.kind = strings.TrimPrefix(name, "OBJ_"), "object store"
			default:
				for _, s := range info.Config.Subjects {
					row.subjects = append(row.subjects, strings.TrimSuffix(strings.TrimSuffix(s, ".>"), ".*"))
				}
				slices.Sort(row.subjects)
			}
			if _, seen := live[name]; !seen {
				live[name] = row
			}
		}
		if err := streams.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.SetupSource(ctx, c.Source, bus.DefaultRetention); err != nil {
		t.Fatal(err)
	}
	collect("source", c.Source)
	if err := bus.SetupBackup(ctx, c.Backup, bus.DefaultRetention); err != nil {
		t.Fatal(err)
	}
	collect("backup", c.Backup)
	return live
}

// streamAndBucketConstants returns topology.go's string constants whose
// names end in Stream or Bucket, by name.
func streamAndBucketConstants(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "topology.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, id := range vs.Names {
				if !strings.HasSuffix(id.Name, "Stream") && !strings.HasSuffix(id.Name, "Bucket") || i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					consts[id.Name] = v
				}
			}
		}
	}
	if len(consts) == 0 {
		t.Fatal("topology.go: no constant named ...Stream or ...Bucket")
	}
	return consts
}
