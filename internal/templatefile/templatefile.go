// Package templatefile reads and writes templates as code: YAML files of
// store.TemplateSpec, with problems reported by file, line and field, and
// line diffs between two specs.
package templatefile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"paddock/internal/store"
)

// This file reads and writes the templates-as-code format: one YAML document
// per template (a file may hold several, separated by ---), with the field
// names of store.TemplateSpec's json tags. Problems are reported by file, line and
// field, for people who edit the files by hand.

// File is one file of templates as code.
type File struct {
	Name string
	Data []byte
}

// Parsed is one valid template read from a file.
type Parsed struct {
	Spec store.TemplateSpec
	File string
	// Line is where the template's document starts.
	Line int
}

// Problem is one problem in a templates-as-code file.
type Problem struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error lists every problem found in a set of template files.
// Nothing is applied when it is returned.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Parse parses and validates every file, and checks that no
// template name is used twice. It returns every template, or a
// *Error with every problem in every file.
func Parse(files []File) ([]Parsed, error) {
	var out []Parsed
	var problems []Problem
	first := map[string]Parsed{}
	for _, f := range files {
		ts, ps := parseTemplateFile(f.Name, f.Data)
		problems = append(problems, ps...)
		for _, t := range ts {
			if prev, ok := first[t.Spec.Name]; ok {
				problems = append(problems, Problem{File: t.File, Line: t.Line, Field: "name",
					Message: fmt.Sprintf("template %q is also defined in %s:%d", t.Spec.Name, prev.File, prev.Line)})
				continue
			}
			first[t.Spec.Name] = t
			out = append(out, t)
		}
	}
	if len(files) == 0 {
		problems = append(problems, Problem{File: "(input)", Message: "no template files given"})
	}
	if len(problems) > 0 {
		return nil, &Error{Problems: problems}
	}
	return out, nil
}

// ParseYAML reads one template in the templates-as-code format.
// Unknown fields are errors; the error names the file, line and field.
func ParseYAML(file string, data []byte) (store.TemplateSpec, error) {
	ts, err := Parse([]File{{Name: file, Data: data}})
	if err != nil {
		return store.TemplateSpec{}, err
	}
	if len(ts) != 1 {
		return store.TemplateSpec{}, &Error{Problems: []Problem{{File: file, Message: fmt.Sprintf("holds %d templates; expected one", len(ts))}}}
	}
	return ts[0].Spec, nil
}

// Read parses every *.yaml and *.yml file in fsys, sorted by name.
func Read(fsys fs.FS) ([]store.TemplateSpec, error) {
	files, err := ReadFiles(fsys)
	if err != nil {
		return nil, err
	}
	ts, err := Parse(files)
	if err != nil {
		return nil, err
	}
	specs := make([]store.TemplateSpec, len(ts))
	for i, t := range ts {
		specs[i] = t.Spec
	}
	return specs, nil
}

// ReadFiles reads every *.yaml and *.yml file at the top of fsys,
// sorted by name.
func ReadFiles(fsys fs.FS) ([]File, error) {
	var names []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, err := fs.Glob(fsys, pat)
		if err != nil {
			return nil, err
		}
		names = append(names, m...)
	}
	sort.Strings(names)
	files := make([]File, 0, len(names))
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", n, err)
		}
		files = append(files, File{Name: path.Base(n), Data: b})
	}
	return files, nil
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// parseTemplateFile parses every document of one file.
func parseTemplateFile(file string, data []byte) ([]Parsed, []Problem) {
	var out []Parsed
	var problems []Problem
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			p := Problem{File: file, Message: "is not valid YAML: " + store.YAMLMessage(err)}
			if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
				p.Line, _ = strconv.Atoi(m[1])
			}
			return out, append(problems, p)
		}
		if len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
			continue // an empty document, e.g. after a trailing ---
		}
		t, ps := parseTemplateDoc(file, doc.Content[0])
		if len(ps) > 0 {
			problems = append(problems, ps...)
			continue
		}
		out = append(out, t)
	}
	if len(out) == 0 && len(problems) == 0 {
		problems = append(problems, Problem{File: file, Message: "holds no template"})
	}
	return out, problems
}

// parseTemplateDoc checks one document against store.TemplateSpec's fields and
// types, decodes it and validates the result, naming the line of each problem.
func parseTemplateDoc(file string, root *yaml.Node) (Parsed, []Problem) {
	t := Parsed{File: file, Line: root.Line}
	w := &yamlWalker{file: file, lines: map[string]int{}}
	w.check(root, reflect.TypeFor[store.TemplateSpec](), "")
	if len(w.problems) > 0 {
		return t, w.problems
	}
	var v any
	if err := root.Decode(&v); err != nil {
		return t, []Problem{{File: file, Line: root.Line, Message: store.YAMLMessage(err)}}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return t, []Problem{{File: file, Line: root.Line, Message: "cannot be read: " + err.Error()}}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t.Spec); err != nil {
		return t, []Problem{{File: file, Line: root.Line, Message: "cannot be read: " + err.Error()}}
	}
	var verr *store.ValidationError
	if err := t.Spec.Validate(); errors.As(err, &verr) {
		ps := make([]Problem, len(verr.Fields))
		for i, f := range verr.Fields {
			ps[i] = Problem{File: file, Line: w.lineOf(f.Field, root.Line), Field: f.Field, Message: f.Message}
		}
		return t, ps
	}
	return t, nil
}

// yamlWalker checks a YAML tree against a Go type, remembering the line of
// every field path ("sizes[1].cpu") for validation messages.
type yamlWalker struct {
	file     string
	lines    map[string]int
	problems []Problem
}

func (w *yamlWalker) add(line int, field, format string, args ...any) {
	w.problems = append(w.problems, Problem{File: w.file, Line: line, Field: field, Message: fmt.Sprintf(format, args...)})
}

// lineOf returns the line of field or of its nearest enclosing field.
func (w *yamlWalker) lineOf(field string, fallback int) int {
	for field != "" {
		if l, ok := w.lines[field]; ok {
			return l
		}
		i := strings.LastIndexAny(field, ".[")
		if i < 0 {
			break
		}
		field = field[:i]
	}
	return fallback
}

func (w *yamlWalker) check(n *yaml.Node, t reflect.Type, field string) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if field != "" {
		w.lines[field] = n.Line
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value leaves the field unset
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	name := field
	if name == "" {
		name = "(template)"
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.add(n.Line, field, "must be a mapping of fields (name: value lines), not %s", describe(n))
			return
		}
		fields := jsonFields(t)
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := k.Value
			path := key
			if field != "" {
				path = field + "." + key
			}
			if prev, ok := seen[key]; ok {
				w.add(k.Line, path, "is set twice (first on line %d)", prev)
				continue
			}
			seen[key] = k.Line
			ft, ok := fields[key]
			if !ok {
				w.add(k.Line, path, "unknown field%s", suggest(key, fields))
				continue
			}
			w.lines[path] = k.Line
			w.check(v, ft, path)
			w.lines[path] = k.Line
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.add(n.Line, field, "must be a list, not %s", describe(n))
			return
		}
		for i, item := range n.Content {
			w.check(item, t.Elem(), fmt.Sprintf("%s[%d]", field, i))
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
			w.add(n.Line, field, "must be text, not %s (put it in quotes if it is meant as text)", describe(n))
		}
	case reflect.Int:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			w.add(n.Line, field, "must be a whole number, not %s", describe(n))
			return
		}
		if _, err := strconv.ParseInt(n.Value, 0, 32); err != nil {
			w.add(n.Line, field, "is too large")
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			w.add(n.Line, field, "must be true or false, not %s", describe(n))
		}
	default:
		w.add(n.Line, name, "cannot be read (unsupported type %s)", t)
	}
}

// describe names what a node holds, for messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.Tag {
	case "!!str":
		return strconv.Quote(n.Value)
	case "!!int", "!!float":
		return "the number " + n.Value
	case "!!bool":
		return n.Value
	}
	return n.Value
}

// jsonFields maps the json names of a struct's fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			m[name] = f.Type
		}
	}
	return m
}

// suggest proposes the known field closest to an unknown one.
func suggest(key string, fields map[string]reflect.Type) string {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	best, bestD := "", 3
	for _, n := range names {
		if strings.EqualFold(n, key) {
			return fmt.Sprintf(" (did you mean %s?)", n)
		}
		if d := editDistance(strings.ToLower(key), strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %s?)", best)
	}
	return " (known fields: " + strings.Join(names, ", ") + ")"
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Marshal writes a spec in the templates-as-code format, with fields in
// the order of store.TemplateSpec and multi-line text (cloud-init) as literal
// blocks, so that exported files read like hand-written ones and diffs of two
// versions line up.
func Marshal(spec store.TemplateSpec) ([]byte, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encode template %s: %w", spec.Name, err)
	}
	// JSON is YAML: decoding it into a node keeps the field order.
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("encode template %s: %w", spec.Name, err)
	}
	restyle(&doc)
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("encode template %s: %w", spec.Name, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode template %s: %w", spec.Name, err)
	}
	return out.Bytes(), nil
}

// restyle drops the JSON quoting and flow style, so that the encoder picks
// plain, block style, and literal blocks for multi-line text.
func restyle(n *yaml.Node) {
	n.Style = 0
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && strings.Contains(strings.TrimSuffix(n.Value, "\n"), "\n") {
		n.Style = yaml.LiteralStyle
	}
	for _, c := range n.Content {
		restyle(c)
	}
}

// DiffOp says whether a diff line is kept, removed or added.
type DiffOp int

// The diff operations.
const (
	DiffKeep DiffOp = iota
	DiffDel
	DiffAdd
)

// DiffLine is one line of a line diff, with its numbers in the old and new
// text (0 where it does not occur).
type DiffLine struct {
	Op      DiffOp
	Text    string
	OldLine int
	NewLine int
}

// DiffSpecs diffs the YAML of two specs line by line.
func DiffSpecs(a, b store.TemplateSpec) ([]DiffLine, error) {
	ya, err := Marshal(a)
	if err != nil {
		return nil, err
	}
	yb, err := Marshal(b)
	if err != nil {
		return nil, err
	}
	return DiffText(string(ya), string(yb)), nil
}

// DiffText is a longest-common-subsequence line diff; templates are a few
// dozen lines, so the quadratic table is small.
func DiffText(a, b string) []DiffLine {
	x, y := splitLines(a), splitLines(b)
	// lcs[i][j] is the LCS length of x[i:] and y[j:].
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []DiffLine
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			out = append(out, DiffLine{Op: DiffKeep, Text: x[i], OldLine: i + 1, NewLine: j + 1})
			i, j = i+1, j+1
		case j < len(y) && (i == len(x) || lcs[i][j+1] > lcs[i+1][j]):
			out = append(out, DiffLine{Op: DiffAdd, Text: y[j], NewLine: j + 1})
			j++
		default:
			out = append(out, DiffLine{Op: DiffDel, Text: x[i], OldLine: i + 1})
			i++
		}
	}
	return out
}

func splitLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// UnifiedDiff renders a diff in the unified format with context lines of
// context around each change; "" when nothing changed.
func UnifiedDiff(lines []DiffLine, context int) string {
	if !slices.ContainsFunc(lines, func(l DiffLine) bool { return l.Op != DiffKeep }) {
		return ""
	}
	var b strings.Builder
	for _, h := range Hunks(lines, context) {
		var nOld, nNew int
		for _, l := range h.Lines {
			if l.Op != DiffAdd {
				nOld++
			}
			if l.Op != DiffDel {
				nNew++
			}
		}
		fmt.Fprintf(&b, "@@ -%d,%d +%d,%d @@\n", h.OldStart, nOld, h.NewStart, nNew)
		for _, l := range h.Lines {
			b.WriteString([]string{" ", "-", "+"}[l.Op] + l.Text + "\n")
		}
	}
	return b.String()
}

// Hunk is a run of diff lines around changes.
type Hunk struct {
	OldStart, NewStart int
	Lines              []DiffLine
}

// Hunks groups the changed lines of a diff with context lines around them.
func Hunks(lines []DiffLine, context int) []Hunk {
	var hunks []Hunk
	show := make([]bool, len(lines))
	for i, l := range lines {
		if l.Op != DiffKeep {
			for k := max(0, i-context); k <= min(len(lines)-1, i+context); k++ {
				show[k] = true
			}
		}
	}
	oldN, newN := 1, 1
	var cur *Hunk
	for i, l := range lines {
		if show[i] {
			if cur == nil {
				hunks = append(hunks, Hunk{OldStart: oldN, NewStart: newN})
				cur = &hunks[len(hunks)-1]
			}
			cur.Lines = append(cur.Lines, l)
		} else {
			cur = nil
		}
		if l.Op != DiffAdd {
			oldN++
		}
		if l.Op != DiffDel {
			newN++
		}
	}
	return hunks
}
