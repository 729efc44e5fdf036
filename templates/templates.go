// Package templates embeds the example templates that `portal dev` seeds,
// in the same YAML format as `portal templates apply`.
package templates

import "embed"

// FS holds the example templates, one per file.
//
//go:embed *.yaml
var FS embed.FS
