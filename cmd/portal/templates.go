package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"paddock/internal/store"
	"paddock/internal/templatefile"
)

const templatesUsage = `usage:
  portal templates export [--dir DIR]      write every current template as DIR/NAME.yaml ("-" prints them)
  portal templates apply -f FILE|DIR ...   create or update templates from YAML files ("-" reads stdin)
      [--dry-run] [--diff] [-m NOTE] [--user LOGIN]`

// cmdTemplates runs `portal templates export|apply`: templates as code.
func cmdTemplates(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "export" && args[0] != "apply") {
		fmt.Fprintln(stderr, templatesUsage)
		return errUsage
	}
	fs := flag.NewFlagSet("templates "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbURL := fs.String("database-url", getenv("DATABASE_URL"), "PostgreSQL URL (DATABASE_URL)")
	var o applyOptions
	dir := "templates"
	if args[0] == "export" {
		fs.StringVar(&dir, "dir", dir, `directory to write into ("-" prints the templates to standard output)`)
	} else {
		fs.Func("f", "a template file, a directory of them, or - for standard input (repeatable)", func(s string) error {
			o.paths = append(o.paths, s)
			return nil
		})
		fs.BoolVar(&o.dryRun, "dry-run", false, "say what would change, change nothing")
		fs.BoolVar(&o.diff, "diff", false, "show the YAML diff of each template that changes")
		fs.StringVar(&o.note, "m", "", "a note recorded with every version published (why the change)")
		fs.StringVar(&o.user, "user", "", "login of the platform engineer to record as the publisher")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected argument %q\n%s\n", fs.Arg(0), templatesUsage)
		return errUsage
	}
	if args[0] == "apply" && len(o.paths) == 0 {
		fmt.Fprintln(stderr, "portal templates apply: -f FILE|DIR is required")
		return errUsage
	}
	// Read and check every file before touching the database, so that a typo
	// is reported even when the database is out of reach.
	var parsed []templatefile.Parsed
	if args[0] == "apply" {
		files, err := readTemplatePaths(o.paths, os.Stdin)
		if err != nil {
			return err
		}
		parsed, err = templatefile.Parse(files)
		var fe *templatefile.Error
		if errors.As(err, &fe) {
			for _, p := range fe.Problems {
				fmt.Fprintln(stderr, p.String())
			}
			return fmt.Errorf("%d problem(s) in the template files; nothing was applied", len(fe.Problems))
		}
		if err != nil {
			return err
		}
	}
	st, closeDB, err := openStore(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer closeDB()
	if args[0] == "export" {
		return exportTemplates(ctx, st, dir, stdout)
	}
	return applyTemplates(ctx, st, parsed, o, stdout)
}

type applyOptions struct {
	paths  []string
	dryRun bool
	diff   bool
	note   string
	user   string
}

// readTemplatePaths reads each path: a file, every *.yaml/*.yml file of a
// directory, or "-" for stdin.
func readTemplatePaths(paths []string, stdin io.Reader) ([]templatefile.File, error) {
	var files []templatefile.File
	for _, p := range paths {
		if p == "-" {
			b, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("read standard input: %w", err)
			}
			files = append(files, templatefile.File{Name: "(stdin)", Data: b})
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			files = append(files, templatefile.File{Name: p, Data: b})
			continue
		}
		fs, err := templatefile.ReadFiles(os.DirFS(p))
		if err != nil {
			return nil, err
		}
		if len(fs) == 0 {
			return nil, fmt.Errorf("%s holds no *.yaml or *.yml files", p)
		}
		for _, f := range fs {
			f.Name = filepath.Join(p, f.Name)
			files = append(files, f)
		}
	}
	return files, nil
}

func applyTemplates(ctx context.Context, st *store.Store, parsed []templatefile.Parsed, o applyOptions, stdout io.Writer) error {
	actor := store.Actor{Name: "templates-as-code"}
	if o.user != "" {
		u, err := st.UserByLogin(ctx, o.user)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no user with login %q", o.user)
		}
		if err != nil {
			return err
		}
		if u.Role != store.RolePlatform {
			return fmt.Errorf("user %q is a %s; only the platform team publishes templates", o.user, u.Role)
		}
		actor = store.UserActor(u)
	}
	specs := make([]store.TemplateSpec, len(parsed))
	where := map[string]string{}
	for i, p := range parsed {
		specs[i] = p.Spec
		where[p.Spec.Name] = fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	results, err := st.ApplyTemplates(ctx, specs, actor, o.note, o.dryRun)
	if err != nil {
		var verr *store.ValidationError
		if errors.As(err, &verr) || errors.Is(err, store.ErrConflict) {
			name, _, _ := strings.Cut(strings.TrimPrefix(err.Error(), "template "), ":")
			return fmt.Errorf("%s: %w; nothing was applied", where[name], err)
		}
		return fmt.Errorf("%w; nothing was applied", err)
	}
	changed := 0
	for _, r := range results {
		created, published := "created", "published"
		if o.dryRun {
			created, published = "would create", "would publish"
		}
		switch {
		case r.Created():
			fmt.Fprintf(stdout, "%s: %s version 1\n", r.Name, created)
		case r.Changed:
			fmt.Fprintf(stdout, "%s: %s version %d (was %d); changed: %s\n", r.Name, published, r.Version, r.Previous, strings.Join(r.Fields, ", "))
		default:
			fmt.Fprintf(stdout, "%s: unchanged (version %d)\n", r.Name, r.Version)
		}
		if r.Changed {
			changed++
			if o.diff && !r.Created() {
				d, err := templatefile.DiffSpecs(r.Old, specs[indexOf(specs, r.Name)])
				if err != nil {
					return err
				}
				fmt.Fprint(stdout, indent(templatefile.UnifiedDiff(d, 2), "    "))
			}
		}
	}
	switch {
	case o.dryRun:
		fmt.Fprintf(stdout, "dry run: %d of %d template(s) would change; nothing was applied\n", changed, len(results))
	default:
		fmt.Fprintf(stdout, "%d of %d template(s) changed\n", changed, len(results))
	}
	return nil
}

func indexOf(specs []store.TemplateSpec, name string) int {
	for i, s := range specs {
		if s.Name == name {
			return i
		}
	}
	return -1
}

func indent(s, prefix string) string {
	if s == "" {
		return ""
	}
	return prefix + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n"+prefix) + "\n"
}

// exportTemplates writes every template that is not retired, one file each,
// in the format apply reads; applying the files unchanged publishes nothing.
func exportTemplates(ctx context.Context, st *store.Store, dir string, stdout io.Writer) error {
	ts, err := st.Templates(ctx)
	if err != nil {
		return err
	}
	if dir != "-" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	for i, t := range ts {
		b, err := templatefile.Marshal(t.Spec)
		if err != nil {
			return err
		}
		head := fmt.Sprintf("# Paddock template %s, version %d.\n", t.Name, t.Version)
		if t.DeprecatedAt != nil {
			head += "# Deprecated: " + strings.ReplaceAll(t.DeprecationNote, "\n", " ") + "\n"
		}
		head += "# Change it and run: portal templates apply -f FILE\n"
		if dir == "-" {
			if i > 0 {
				fmt.Fprintln(stdout, "---")
			}
			fmt.Fprint(stdout, head+string(b))
			continue
		}
		p := filepath.Join(dir, t.Name+".yaml")
		if err := writeFileAtomic(p, []byte(head+string(b))); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s (version %d)\n", p, t.Version)
	}
	return nil
}

// writeFileAtomic replaces path with data, so that an interrupted export
// never leaves half a file behind.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
