package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"paddock/internal/provision"
	"paddock/internal/store"
)

const exportUsage = `usage:
  portal export --team TEAM --dir DIR   write TEAM's VMs as DIR/NAME.yaml, one VirtualMachine each,
                                        and DIR/kustomization.yaml listing them (for Kustomize or GitOps)`

// cmdExport runs `portal export`: a team's VMs as manifests for version control.
func cmdExport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbURL := fs.String("database-url", getenv("DATABASE_URL"), "PostgreSQL URL (DATABASE_URL)")
	team := fs.String("team", "", "the team whose VMs to export")
	dir := fs.String("dir", "", "directory to write into (created when missing)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 || *team == "" || *dir == "" {
		fmt.Fprintln(stderr, exportUsage)
		return errUsage
	}
	st, closeDB, err := openStore(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer closeDB()
	teams, err := st.Teams(ctx)
	if err != nil {
		return err
	}
	var t store.Team
	for _, tm := range teams {
		if tm.Name == *team {
			t = tm
		}
	}
	if t.ID == 0 {
		return fmt.Errorf("no team named %q", *team)
	}
	rs, err := st.TeamManifests(ctx, t.ID)
	if err != nil {
		return err
	}
	files, err := provision.Export(t.Name, rs)
	if err != nil {
		return err
	}
	if err := provision.WriteDir(*dir, files); err != nil {
		return err
	}
	for _, f := range files {
		fmt.Fprintf(stdout, "wrote %s\n", filepath.Join(*dir, f.Name))
	}
	pools := 0
	for _, r := range rs {
		if r.Pool {
			pools++
		}
	}
	fmt.Fprintf(stdout, "%d VirtualMachine(s) and %d VirtualMachinePool(s) of team %s\n", len(files)-1-pools, pools, t.Name)
	return nil
}
