package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"paddock/internal/store"
)

const rulesUsage = `usage:
  portal approval-rules export                      print every approval rule as YAML
  portal approval-rules apply -f FILE [--prune] [--dry-run] [--user LOGIN]
      create or update the rules in FILE ("-" reads stdin); --prune deletes rules not in it`

// cmdApprovalRules runs `portal approval-rules export|apply`: the approval
// policy as code, kept beside the templates.
func cmdApprovalRules(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "export" && args[0] != "apply") {
		fmt.Fprintln(stderr, rulesUsage)
		return errUsage
	}
	fs := flag.NewFlagSet("approval-rules "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbURL := fs.String("database-url", getenv("DATABASE_URL"), "PostgreSQL URL (DATABASE_URL)")
	file := fs.String("f", "", "apply: the rules file, or - for standard input")
	prune := fs.Bool("prune", false, "apply: delete rules that are not in the file, so that it is the whole policy")
	dry := fs.Bool("dry-run", false, "apply: say what would change, change nothing")
	user := fs.String("user", "", "apply: login of the platform engineer to record in the audit log")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 {
		fmt.Fprintln(stderr, rulesUsage)
		return errUsage
	}
	var rules []store.RuleInput
	if args[0] == "apply" {
		if *file == "" {
			fmt.Fprintln(stderr, "portal approval-rules apply: -f FILE is required")
			return errUsage
		}
		var data []byte
		var err error
		if *file == "-" {
			data, err = io.ReadAll(os.Stdin)
		} else {
			data, err = os.ReadFile(*file)
		}
		if err != nil {
			return err
		}
		if rules, err = store.ParseApprovalRulesYAML(*file, data); err != nil {
			return err
		}
	}
	st, closeDB, err := openStore(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer closeDB()
	if args[0] == "export" {
		all, err := st.ApprovalRules(ctx)
		if err != nil {
			return err
		}
		b, err := store.ApprovalRulesYAML(all)
		if err != nil {
			return err
		}
		_, err = stdout.Write(b)
		return err
	}
	actor := store.Actor{Name: "approval-rules apply"}
	if *user != "" {
		u, err := st.UserByLogin(ctx, *user)
		if err != nil {
			return fmt.Errorf("--user %s: %w", *user, err)
		}
		actor = store.UserActor(u)
	}
	changes, err := st.ApplyApprovalRules(ctx, rules, *prune, *dry, actor)
	var v *store.ValidationError
	if errors.As(err, &v) {
		for _, f := range v.Fields {
			fmt.Fprintf(stderr, "%s: %s: %s\n", *file, f.Field, f.Message)
		}
		return fmt.Errorf("%d problem(s) in %s; nothing was applied", len(v.Fields), *file)
	}
	if err != nil {
		return err
	}
	verb := ""
	if *dry {
		verb = "would be "
	}
	for _, c := range changes {
		fmt.Fprintf(stdout, "%s: %s%s\n", c.Scope, verb, c.Change)
	}
	return nil
}
