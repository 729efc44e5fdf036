package templates

import "embed"

// PolicyFS holds the example approval rules (policy/approval-rules.yaml)
// that `portal dev` seeds, in the format of `portal approval-rules apply`.
//
//go:embed policy/*.yaml
var PolicyFS embed.FS
