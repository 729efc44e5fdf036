package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"paddock/internal/store"
)

func cmdToken(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		fmt.Fprintln(stderr, "usage: portal token create --user LOGIN [--name NAME] [--expires 720h]")
		return errUsage
	}
	fs := flag.NewFlagSet("token create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	login := fs.String("user", "", "login of the token's owner (required)")
	name := fs.String("name", "cli", "a name to recognise the token by")
	expires := fs.Duration("expires", 90*24*time.Hour, "lifetime; 0 means it never expires")
	dbURL := fs.String("database-url", getenv("DATABASE_URL"), "PostgreSQL URL (DATABASE_URL)")
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	if *login == "" {
		fmt.Fprintln(stderr, "portal token create: --user is required")
		return errUsage
	}
	st, closeDB, err := openStore(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer closeDB()
	u, err := st.UserByLogin(ctx, *login)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no user with login %q", *login)
	}
	if err != nil {
		return err
	}
	var exp *time.Time
	if *expires > 0 {
		t := time.Now().Add(*expires)
		exp = &t
	}
	tok, err := st.CreateTokenBy(ctx, store.Actor{Name: "cli"}, u.ID, *name, exp)
	if errors.Is(err, store.ErrUserDisabled) {
		return fmt.Errorf("%s is disabled; `portal users enable --user %s` first if they are back", *login, *login)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
