package templatefile_test

import (
	"errors"
	"strings"
	"testing"

	"paddock/internal/store"
	"paddock/internal/templatefile"
	"paddock/templates"
)

const goodYAML = `name: tiny
displayName: Tiny
osFamily: cirros
image:
  containerDisk: quay.io/kubevirt/cirros-container-disk-demo:v1.8.0
sizes:
  - name: nano
    instancetype: u1.nano
  - name: custom
    cpu: 2
    memoryMiB: 2048
sshUser: cirros
maxLeaseDays: 7
autoApprove: true
`

// TestTemplateYAMLProblemsNameFileLineAndField: every kind of mistake is
// reported at its line, with the field's path.
func TestTemplateYAMLProblemsNameFileLineAndField(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, yaml string
		want       []string // substrings of the problems, in order
	}{
		{"unknown field", strings.Replace(goodYAML, "    cpu: 2", "    cpus: 2", 1),
			[]string{"t.yaml:10: sizes[1].cpus: unknown field (did you mean cpu?)"}},
		{"unknown top-level field", goodYAML + "colour: red\n",
			[]string{"t.yaml:15: colour: unknown field"}},
		{"wrong type", strings.Replace(goodYAML, "maxLeaseDays: 7", "maxLeaseDays: seven", 1),
			[]string{`t.yaml:13: maxLeaseDays: must be a whole number, not "seven"`}},
		{"text that is a number", strings.Replace(goodYAML, "name: nano", "name: 42", 1),
			[]string{"t.yaml:7: sizes[0].name: must be text, not the number 42"}},
		{"bool", strings.Replace(goodYAML, "autoApprove: true", "autoApprove: sometimes", 1),
			[]string{`t.yaml:14: autoApprove: must be true or false`}},
		{"not a list", strings.Replace(goodYAML, "osFamily: cirros", "osFamily: cirros\ntags: test", 1),
			[]string{`t.yaml:4: tags: must be a list`}},
		{"set twice", goodYAML + "sshUser: root\n",
			[]string{"t.yaml:15: sshUser: is set twice (first on line 12)"}},
		{"invalid value", strings.Replace(goodYAML, "    memoryMiB: 2048", "    memoryMiB: 64", 1),
			[]string{"t.yaml:11: sizes[1].memoryMiB: must be between 128 and 524288"}},
		{"invalid, at the enclosing field", strings.Replace(goodYAML, "    instancetype: u1.nano", "    instancetype: x9.huge", 1),
			[]string{`t.yaml:8: sizes[0].instancetype: "x9.huge" is not a known u1 instancetype`}},
		{"missing field", strings.Replace(goodYAML, "displayName: Tiny\n", "", 1),
			[]string{"t.yaml:1: displayName: is required"}},
		{"two problems", strings.Replace(strings.Replace(goodYAML, "maxLeaseDays: 7", "maxLeaseDays: 0", 1), "sshUser: cirros", "sshUser: Root User", 1),
			[]string{"t.yaml:12: sshUser:", "t.yaml:13: maxLeaseDays: must be between 1 and 365"}},
		{"bad cloud-init", goodYAML + "cloudInit: |\n  packages: [a]\n",
			[]string{"t.yaml:15: cloudInit: must start with the line #cloud-config"}},
		{"syntax", "name: x\n  bad: : indent\n", []string{"t.yaml:2: is not valid YAML"}},
		{"empty", "# nothing\n", []string{"t.yaml: holds no template"}},
		{"second document", goodYAML + "---\nname: other\ncpu: 1\n",
			[]string{"t.yaml:17: cpu: unknown field"}},
	}
	for _, c := range cases {
		_, err := templatefile.Parse([]templatefile.File{{Name: "t.yaml", Data: []byte(c.yaml)}})
		var fe *templatefile.Error
		if !errors.As(err, &fe) {
			t.Errorf("%s: err = %v", c.name, err)
			continue
		}
		msg := fe.Error()
		if len(fe.Problems) < len(c.want) {
			t.Errorf("%s: %d problems, want %d:\n%s", c.name, len(fe.Problems), len(c.want), msg)
			continue
		}
		for i, w := range c.want {
			if !strings.Contains(fe.Problems[i].String(), w) {
				t.Errorf("%s: problem %d is %q, want %q", c.name, i, fe.Problems[i].String(), w)
			}
		}
	}
}

func TestTemplateFilesSeveralDocumentsAndDuplicates(t *testing.T) {
	t.Parallel()
	other := strings.Replace(goodYAML, "name: tiny", "name: tiny-2", 1)
	ts, err := templatefile.Parse([]templatefile.File{{Name: "a.yaml", Data: []byte(goodYAML + "---\n" + other + "---\n")}})
	if err != nil || len(ts) != 2 || ts[1].Spec.Name != "tiny-2" || ts[1].Line != 16 {
		t.Fatalf("two documents: %+v %v", ts, err)
	}
	_, err = templatefile.Parse([]templatefile.File{{Name: "a.yaml", Data: []byte(goodYAML)}, {Name: "b.yaml", Data: []byte(goodYAML)}})
	if err == nil || !strings.Contains(err.Error(), `b.yaml:1: name: template "tiny" is also defined in a.yaml:1`) {
		t.Errorf("duplicate: %v", err)
	}
	// Anchors and aliases are YAML, so they work.
	aliased := strings.Replace(goodYAML, "osFamily: cirros", "osFamily: &os cirros\nlogo: *os", 1)
	ts, err = templatefile.Parse([]templatefile.File{{Name: "a.yaml", Data: []byte(aliased)}})
	if err != nil || ts[0].Spec.Logo != "cirros" {
		t.Errorf("alias: %+v %v", ts, err)
	}
}

// TestTemplateYAMLRoundTrip: exporting a template and reading it back gives
// the same spec, for every seeded example.
func TestTemplateYAMLRoundTrip(t *testing.T) {
	t.Parallel()
	specs, err := templatefile.Read(templates.FS)
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range specs {
		b, err := templatefile.Marshal(sp)
		if err != nil {
			t.Fatal(err)
		}
		back, err := templatefile.ParseYAML(sp.Name+".yaml", b)
		if err != nil {
			t.Fatalf("%s: %v\n%s", sp.Name, err, b)
		}
		if !store.SameSpec(sp, back) {
			t.Errorf("%s changed in the round trip: %v", sp.Name, store.ChangedFields(sp, back))
		}
		// Field order follows the spec, and cloud-init stays a readable block.
		if !strings.HasPrefix(string(b), "name: "+sp.Name+"\ndisplayName: ") {
			t.Errorf("%s: export starts %q", sp.Name, string(b)[:30])
		}
		if sp.CloudInit != "" && !strings.Contains(string(b), "cloudInit: |\n  #cloud-config\n") {
			t.Errorf("%s: cloud-init is not a literal block:\n%s", sp.Name, b)
		}
	}
}

func TestDiffText(t *testing.T) {
	t.Parallel()
	d := templatefile.DiffText("a\nb\nc\nd\n", "a\nc\nd\ne\n")
	var got []string
	for _, l := range d {
		got = append(got, []string{" ", "-", "+"}[l.Op]+l.Text)
	}
	if strings.Join(got, ",") != " a,-b, c, d,+e" {
		t.Errorf("diff = %v", got)
	}
	if u := templatefile.UnifiedDiff(d, 1); u != "@@ -1,4 +1,4 @@\n a\n-b\n c\n d\n+e\n" {
		t.Errorf("unified:\n%s", u)
	}
	d = templatefile.DiffText("1\n2\n3\n4\n5\n6\n", "1\nX\n3\n4\n5\nY\n")
	if u := templatefile.UnifiedDiff(d, 1); u != "@@ -1,3 +1,3 @@\n 1\n-2\n+X\n 3\n@@ -5,2 +5,2 @@\n 5\n-6\n+Y\n" {
		t.Errorf("unified:\n%s", u)
	}
	if templatefile.UnifiedDiff(templatefile.DiffText("x\n", "x\n"), 3) != "" {
		t.Error("equal texts differ")
	}
}

func TestChangedFields(t *testing.T) {
	t.Parallel()
	specs, _ := templatefile.Read(templates.FS)
	a := specs[0]
	b := a
	b.Sizes = append([]store.Size{}, a.Sizes...)
	b.Sizes[0].Name = "other"
	b.MaxLeaseDays++
	if got := store.ChangedFields(a, b); strings.Join(got, ",") != "sizes,maxLeaseDays" {
		t.Errorf("changed = %v", got)
	}
	if store.ChangedFields(a, a) != nil {
		t.Error("a spec differs from itself")
	}
	// nil and empty lists are the same template.
	c := a
	c.Tags = []string{}
	a.Tags = nil
	if !store.SameSpec(a, c) {
		t.Error("nil and empty tags differ")
	}
}
