// Command portal is Paddock: the web portal, the provisioner and the tools
// around them, in one binary.
//
//	portal serve                  web server and provisioner workers
//	portal migrate                apply database migrations and exit
//	portal dev                    a complete local setup for newcomers
//	portal token create --user L  print a new API token for user L
//	portal users disable --user L offboard user L (see users.go)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, errUsage) {
		fmt.Fprintln(os.Stderr, "portal:", err)
		os.Exit(1)
	}
	if err != nil {
		os.Exit(2)
	}
}

var errUsage = errors.New("usage")

const usage = `Paddock — self-service VMs on KubeVirt.

Usage:
  portal serve [flags]                   run the web server and provisioner
  portal migrate [flags]                 apply database migrations and exit
  portal dev [flags]                     run locally with demo data (simulated cluster)
  portal token create --user LOGIN       print a new API token for a user
  portal users disable --user LOGIN [--reason TEXT]
                                         offboard a user: disable, revoke tokens, end sessions
  portal users enable --user LOGIN       let a disabled user sign in again
  portal templates export [--dir DIR]    write every current template as YAML
  portal templates apply -f FILE|DIR [--dry-run] [--diff] [-m NOTE] [--user LOGIN]
  portal approval-rules export|apply -f FILE [--prune] [--dry-run]
  portal export --team TEAM --dir DIR    write a team's VMs as manifests for Kustomize or GitOps

Run "portal COMMAND -h" for the flags of a command.
`

// run is the whole program; main only wires it to the process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "serve":
		return cmdServe(ctx, args[1:], getenv, stderr)
	case "migrate":
		return cmdMigrate(ctx, args[1:], getenv, stderr)
	case "dev":
		return cmdDev(ctx, args[1:], getenv, stdout, stderr)
	case "token":
		return cmdToken(ctx, args[1:], getenv, stdout, stderr)
	case "users":
		return cmdUsers(ctx, args[1:], getenv, stdout, stderr)
	case "templates":
		return cmdTemplates(ctx, args[1:], getenv, stdout, stderr)
	case "approval-rules":
		return cmdApprovalRules(ctx, args[1:], getenv, stdout, stderr)
	case "export":
		return cmdExport(ctx, args[1:], getenv, stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
	return errUsage
}
