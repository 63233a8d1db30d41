package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Loaded is a configuration and where each of its values came from.
type Loaded struct {
	Config
	Path    string            // the file read, "" if none
	origins map[string]string // key -> "FILE:LINE" or "$FERRY_X"
}

// Origin tells where the value of key came from ("" = built-in default).
func (l *Loaded) Origin(key string) string { return l.origins[key] }

// Load reads the YAML file at path (none if path is ""), then applies the
// FERRY_* variables that lookupEnv finds (os.LookupEnv in the commands), and
// validates the result. On any problem it returns all of them as Problems.
func Load(path string, lookupEnv func(string) (string, bool)) (*Loaded, error) {
	l := &Loaded{Config: Default(), Path: path, origins: map[string]string{}}
	var ps Problems
	if path != "" {
		data, err := readFile(path)
		if err != nil {
			return nil, err
		}
		ps = append(ps, l.decodeFile(path, data)...)
	}
	ps = append(ps, l.applyEnv(lookupEnv)...)
	if len(ps) == 0 {
		ps = l.validate()
	}
	if len(ps) > 0 {
		return l, ps
	}
	return l, nil
}

// LoadLenient is Load for a command that must run whatever the
// configuration holds (ferry hook: libvirtd must never see it fail). A value
// that does not parse or validate is left out, and only it: the value under
// it (the file's for a variable, else the default) stays, and the rest
// applies. It returns the configuration and every problem, for warnings.
func LoadLenient(path string, lookupEnv func(string) (string, bool)) (*Loaded, Problems) {
	l := &Loaded{Config: Default(), Path: path, origins: map[string]string{}}
	var ps Problems
	if path != "" {
		if data, err := readFile(path); err != nil {
			ps = append(ps, err...)
		} else {
			ps = append(ps, l.decodeFile(path, data)...)
		}
	}
	ps = append(ps, l.dropInvalid(Default(), nil)...)
	under, underOrigins := l.Config, maps.Clone(l.origins)
	ps = append(ps, l.applyEnv(lookupEnv)...)
	return l, append(ps, l.dropInvalid(under, underOrigins)...)
}

// dropInvalid puts back the value from under, with its origin, of each key
// that does not validate, and returns the problems.
func (l *Loaded) dropInvalid(under Config, underOrigins map[string]string) Problems {
	ps := l.validate()
	for _, p := range ps {
		key := p.Key
		if _, ok := l.field(key); !ok { // a pair's key: its whole section goes
			key = key[:max(strings.LastIndex(key, "."), 0)]
		}
		v, ok := under.field(key)
		if !ok {
			continue
		}
		cur, _ := l.field(key)
		cur.Set(v)
		for k := range l.origins {
			if strings.HasPrefix(k, key+".") {
				delete(l.origins, k)
			}
		}
		if o, ok := underOrigins[key]; ok {
			l.origins[key] = o
		} else {
			delete(l.origins, key)
		}
	}
	return ps
}

func readFile(path string) ([]byte, Problems) {
	data, err := os.ReadFile(path)
	if err != nil {
		why := err.Error()
		if errors.Is(err, fs.ErrNotExist) {
			why = "no such file; write one from the example in the package (ferry.yaml), or leave --config out"
		}
		return nil, Problems{{Source: path, Why: why}}
	}
	return data, nil
}

// Key is one setting: its dotted file key and its environment variable.
type Key struct {
	Name string // e.g. publisher.chunk_size
	Env  string // e.g. FERRY_PUBLISHER_CHUNK_SIZE
	Type string // string, integer, boolean, size, duration, pairs
}

// Keys lists every setting, in file order.
func Keys() []Key {
	var keys []Key
	walkFields(reflect.TypeOf(Config{}), "", func(name string, t reflect.Type, _ []int) {
		keys = append(keys, Key{Name: name, Env: envName(name), Type: typeName(t)})
	}, nil)
	return keys
}

func envName(key string) string {
	return "FERRY_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Value returns the value of key as a flag would take it, and whether the key exists.
func (c *Config) Value(key string) (string, bool) {
	v, ok := c.field(key)
	if !ok {
		return "", false
	}
	switch x := v.Interface().(type) {
	case Size:
		return strconv.FormatUint(uint64(x), 10), true
	case time.Duration:
		return x.String(), true
	case Pairs:
		return x.String(), true
	default:
		return fmt.Sprint(x), true
	}
}

func (c *Config) field(key string) (reflect.Value, bool) {
	var found reflect.Value
	walkFields(reflect.TypeOf(*c), "", func(name string, _ reflect.Type, index []int) {
		if name == key {
			found = reflect.ValueOf(c).Elem().FieldByIndex(index)
		}
	}, nil)
	return found, found.IsValid()
}

var (
	sizeType     = reflect.TypeOf(Size(0))
	durationType = reflect.TypeOf(time.Duration(0))
	pairsType    = reflect.TypeOf(Pairs(nil))
)

// isLeaf: a struct type that is one value, not a section of keys.
func isLeaf(t reflect.Type) bool { return t.Kind() != reflect.Struct }

// walkFields calls leaf for every leaf setting under t.
func walkFields(t reflect.Type, prefix string, leaf func(name string, t reflect.Type, index []int), index []int) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := yamlName(f)
		if prefix != "" {
			name = prefix + "." + name
		}
		idx := append(append([]int(nil), index...), i)
		if isLeaf(f.Type) {
			leaf(name, f.Type, idx)
		} else {
			walkFields(f.Type, name, leaf, idx)
		}
	}
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

func typeName(t reflect.Type) string {
	switch {
	case t == sizeType:
		return "size"
	case t == durationType:
		return "duration"
	case t == pairsType:
		return "pairs"
	case t.Kind() == reflect.Int:
		return "integer"
	case t.Kind() == reflect.Bool:
		return "boolean"
	default:
		return "string"
	}
}

// setLeaf parses text into v the same way for the file and the environment.
func setLeaf(v reflect.Value, text string) error {
	switch {
	case v.Type() == sizeType:
		n, err := ParseSize(text)
		if err != nil {
			return err
		}
		v.SetUint(uint64(n))
	case v.Type() == durationType:
		d, err := time.ParseDuration(text)
		if err != nil {
			return fmt.Errorf("%q is not a duration (write e.g. 30s, 30m or 1h30m)", text)
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.Int:
		n, err := strconv.Atoi(text)
		if err != nil {
			return fmt.Errorf("%q is not an integer", text)
		}
		v.SetInt(int64(n))
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return fmt.Errorf("%q is not a boolean (write true or false)", text)
		}
		v.SetBool(b)
	case v.Type() == pairsType:
		ps, err := parsePairs(text)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(ps))
	default:
		v.SetString(text)
	}
	return nil
}

// decodeFile walks the YAML document alongside the Config struct, so every
// problem names its key and line (yaml.v3's own strict mode names neither
// the file nor the full key).
func (l *Loaded) decodeFile(path string, data []byte) Problems {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Problems{{Source: path, Why: strings.TrimPrefix(err.Error(), "yaml: ") + " (not valid YAML)"}}
	}
	if len(doc.Content) == 0 {
		return nil // an empty file sets nothing
	}
	var ps Problems
	l.decodeNode(path, "", doc.Content[0], reflect.ValueOf(&l.Config).Elem(), &ps)
	return ps
}

func (l *Loaded) decodeNode(path, key string, n *yaml.Node, v reflect.Value, ps *Problems) {
	where := fmt.Sprintf("%s:%d", path, n.Line)
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if !isLeaf(v.Type()) {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return // "section:" with nothing under it
		}
		if n.Kind != yaml.MappingNode {
			*ps = append(*ps, Problem{where, key, "want a section of keys (key: value lines), not a single value or a list"})
			return
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			full := k.Value
			if key != "" {
				full = key + "." + k.Value
			}
			kwhere := fmt.Sprintf("%s:%d", path, k.Line)
			if seen[k.Value] {
				*ps = append(*ps, Problem{kwhere, full, "set twice in this section"})
				continue
			}
			seen[k.Value] = true
			f, ok := fieldByYAMLName(v, k.Value)
			if !ok {
				*ps = append(*ps, Problem{kwhere, full, unknownKeyWhy(v.Type(), k.Value)})
				continue
			}
			l.decodeNode(path, full, val, f, ps)
			if _, set := l.origins[full]; set && f.Type() == pairsType {
				l.origins[full] = kwhere // the section's line, not its first pair's
			}
		}
		return
	}
	if v.Type() == pairsType {
		l.decodePairs(path, key, n, v, ps)
		return
	}
	if n.Kind != yaml.ScalarNode {
		*ps = append(*ps, Problem{where, key, fmt.Sprintf("want a single %s, not a section or a list", typeName(v.Type()))})
		return
	}
	if n.Tag == "!!null" {
		return // "key:" with no value keeps the default
	}
	if err := setLeaf(v, n.Value); err != nil {
		*ps = append(*ps, Problem{where, key, err.Error()})
		return
	}
	l.origins[key] = where
}

// decodePairs reads a section of NAME: VALUE lines into a Pairs value;
// each pair's origin is kept under key.NAME, so a problem names its line.
func (l *Loaded) decodePairs(path, key string, n *yaml.Node, v reflect.Value, ps *Problems) {
	where := fmt.Sprintf("%s:%d", path, n.Line)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // "key:" with nothing under it keeps the default
	}
	if n.Kind != yaml.MappingNode {
		*ps = append(*ps, Problem{where, key, "want a section of NAME: VALUE lines, not a single value or a list"})
		return
	}
	pairs := Pairs{}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		full, kwhere := key+"."+k.Value, fmt.Sprintf("%s:%d", path, k.Line)
		switch {
		case seen[k.Value]:
			*ps = append(*ps, Problem{kwhere, full, "set twice in this section"})
			continue
		case val.Kind != yaml.ScalarNode || val.Tag == "!!null":
			*ps = append(*ps, Problem{kwhere, full, "want one value after the colon, not a section, a list or nothing"})
			continue
		}
		seen[k.Value] = true
		pairs = append(pairs, Pair{k.Value, val.Value})
		l.origins[full] = kwhere
	}
	v.Set(reflect.ValueOf(pairs))
	l.origins[key] = where
}

func fieldByYAMLName(v reflect.Value, name string) (reflect.Value, bool) {
	for i := 0; i < v.NumField(); i++ {
		if yamlName(v.Type().Field(i)) == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// unknownKeyWhy lists the keys the section takes, so a typo is obvious.
func unknownKeyWhy(t reflect.Type, name string) string {
	var known []string
	for i := 0; i < t.NumField(); i++ {
		known = append(known, yamlName(t.Field(i)))
	}
	sort.Strings(known)
	why := "unknown key"
	for _, k := range known {
		if editDistance(k, name) <= 2 {
			why += fmt.Sprintf(" (did you mean %s?)", k)
			break
		}
	}
	return why + "; this section takes " + strings.Join(known, ", ")
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func (l *Loaded) applyEnv(lookupEnv func(string) (string, bool)) Problems {
	if lookupEnv == nil {
		return nil
	}
	var ps Problems
	root := reflect.ValueOf(&l.Config).Elem()
	walkFields(root.Type(), "", func(name string, _ reflect.Type, index []int) {
		env := envName(name)
		text, ok := lookupEnv(env)
		if !ok {
			return
		}
		if err := setLeaf(root.FieldByIndex(index), text); err != nil {
			ps = append(ps, Problem{"$" + env, name, err.Error()})
			return
		}
		l.origins[name] = "$" + env
	}, nil)
	return ps
}
