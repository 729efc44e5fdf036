// Package migrations embeds Paddock's numbered SQL migrations. They are applied
// by store.Migrate with goose, under a PostgreSQL advisory lock.
package migrations

import "embed"

// FS holds every migration, named NNNN_name.sql.
//
//go:embed *.sql
var FS embed.FS
