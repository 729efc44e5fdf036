package store

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// ParseTemplateYAML reads one template in the templates-as-code format.
// Unknown fields are errors; the error names the file.
func ParseTemplateYAML(file string, data []byte) (TemplateSpec, error) {
	var t TemplateSpec
	if err := yaml.UnmarshalStrict(data, &t); err != nil {
		return t, fmt.Errorf("%s: %s", file, yamlMessage(err))
	}
	if err := t.Validate(); err != nil {
		return t, fmt.Errorf("%s: %w", file, err)
	}
	return t, nil
}

// ReadTemplates parses every *.yaml file in fsys, sorted by name.
func ReadTemplates(fsys fs.FS) ([]TemplateSpec, error) {
	names, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []TemplateSpec
	var problems []string
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		t, err := ParseTemplateYAML(path.Base(n), b)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		out = append(out, t)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("invalid templates:\n  %s", strings.Join(problems, "\n  "))
	}
	return out, nil
}
