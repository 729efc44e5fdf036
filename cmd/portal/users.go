package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"paddock/internal/store"
)

const usersUsage = "usage: portal users disable --user LOGIN [--reason TEXT] | portal users enable --user LOGIN"

// cmdUsers is scripted offboarding. `disable` disables the account, revokes
// every API token of it and ends every web session, in one audited
// transaction; the account then stays disabled, even if the identity
// provider still grants a role, until `enable`. Both are audited with the
// actor "cli", so the log shows they came from the command line.
func cmdUsers(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "disable" && args[0] != "enable") {
		fmt.Fprintln(stderr, usersUsage)
		return errUsage
	}
	verb := args[0]
	fs := flag.NewFlagSet("users "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	login := fs.String("user", "", "login of the user (required)")
	reason := ""
	if verb == "disable" {
		fs.StringVar(&reason, "reason", "", "why, for the audit log (for example a ticket number)")
	}
	dbURL := fs.String("database-url", getenv("DATABASE_URL"), "PostgreSQL URL (DATABASE_URL)")
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	if *login == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "portal users %s: --user is required, and nothing else\n", verb)
		return errUsage
	}
	st, closeDB, err := openStore(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer closeDB()
	actor := store.Actor{Name: "cli"}
	if verb == "enable" {
		changed, err := st.EnableUser(ctx, actor, *login)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no user with login %q", *login)
		}
		if err != nil {
			return err
		}
		if !changed {
			fmt.Fprintf(stdout, "%s was not disabled; nothing changed\n", *login)
			return nil
		}
		fmt.Fprintf(stdout, "enabled %s: they may sign in again (their old API tokens stay revoked)\n", *login)
		return nil
	}
	off, err := st.DisableUser(ctx, actor, *login, reason)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no user with login %q", *login)
	}
	if err != nil {
		return err
	}
	if off.AlreadyDisabled {
		fmt.Fprintf(stdout, "%s was already disabled; ", *login)
	} else {
		fmt.Fprintf(stdout, "disabled %s; ", *login)
	}
	fmt.Fprintf(stdout, "%d API tokens revoked, %d web sessions ended\n", off.TokensRevoked, off.SessionsEnded)
	return nil
}
