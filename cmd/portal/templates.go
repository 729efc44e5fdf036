package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"

	"paddock/internal/store"
)

func cmdTemplates(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "export" && args[0] != "apply") {
		fmt.Fprintln(stderr, "usage: portal templates export [--dir DIR] | portal templates apply -f FILE|DIR [--dry-run]")
		return errUsage
	}
	fs := flag.NewFlagSet("templates "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbURL := fs.String("database-url", getenv("DATABASE_URL"), "PostgreSQL URL (DATABASE_URL)")
	dir := fs.String("dir", "templates", "export: directory to write into")
	file := fs.String("f", "", "apply: a template file or a directory of them")
	dry := fs.Bool("dry-run", false, "apply: say what would change, change nothing")
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	if *dbURL == "" {
		return errors.New("DATABASE_URL is not set (or pass --database-url)")
	}
	pool, err := openDB(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	st := store.New(pool)
	if args[0] == "export" {
		ts, err := st.Templates(ctx)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(*dir, 0o755); err != nil {
			return err
		}
		for _, t := range ts {
			b, err := yaml.Marshal(t.Spec)
			if err != nil {
				return err
			}
			p := filepath.Join(*dir, t.Name+".yaml")
			if err := os.WriteFile(p, b, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "wrote %s (version %d)\n", p, t.Version)
		}
		return nil
	}
	if *file == "" {
		return errors.New("templates apply: -f FILE|DIR is required")
	}
	var specs []store.TemplateSpec
	if fi, err := os.Stat(*file); err != nil {
		return err
	} else if fi.IsDir() {
		specs, err = store.ReadTemplates(os.DirFS(*file))
		if err != nil {
			return err
		}
	} else {
		b, err := os.ReadFile(*file)
		if err != nil {
			return err
		}
		t, err := store.ParseTemplateYAML(*file, b)
		if err != nil {
			return err
		}
		specs = append(specs, t)
	}
	for _, spec := range specs {
		if *dry {
			cur, err := st.TemplateByName(ctx, spec.Name)
			switch {
			case errors.Is(err, store.ErrNotFound):
				fmt.Fprintf(stdout, "%s: would create version 1\n", spec.Name)
			case err != nil:
				return err
			case store.SameSpec(cur.Spec, spec):
				fmt.Fprintf(stdout, "%s: unchanged (version %d)\n", spec.Name, cur.Version)
			default:
				fmt.Fprintf(stdout, "%s: would publish version %d\n", spec.Name, cur.Version+1)
			}
			continue
		}
		v, changed, err := st.PublishTemplate(ctx, spec, nil)
		if err != nil {
			return err
		}
		if changed {
			fmt.Fprintf(stdout, "%s: published version %d\n", spec.Name, v)
		} else {
			fmt.Fprintf(stdout, "%s: unchanged (version %d)\n", spec.Name, v)
		}
	}
	return nil
}
