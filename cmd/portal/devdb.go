package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// devDB is a private PostgreSQL under ./.paddock/, reached by unix socket
// only, started by `portal dev` when DATABASE_URL is unset and stopped when
// it exits.
type devDB struct {
	dir     string // .paddock
	data    string // .paddock/pg
	sock    string // .paddock/run
	bin     string
	runAs   string // when running as root: the user that runs postgres
	started bool
	log     io.Writer
}

// findPGBin locates initdb and pg_ctl on PATH or in Debian's versioned directories.
func findPGBin() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New(`PostgreSQL's initdb and pg_ctl were not found.
Either install PostgreSQL (Debian/Ubuntu: sudo apt-get install postgresql; macOS: brew install postgresql)
or point Paddock at an existing server with DATABASE_URL=postgres://user@host:5432/paddock`)
}

func pgVersion(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

func newDevDB(root string, log io.Writer) (*devDB, error) {
	bin, err := findPGBin()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	d := &devDB{dir: abs, data: filepath.Join(abs, "pg"), sock: filepath.Join(abs, "run"), bin: bin, log: log}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root; use its own system user.
		if _, err := user.Lookup("postgres"); err != nil {
			return nil, errors.New("running as root, and there is no 'postgres' user to run the private PostgreSQL as; run `make dev` as a normal user or set DATABASE_URL")
		}
		d.runAs = "postgres"
	}
	return d, nil
}

// URL is the connection string of the private server.
func (d *devDB) URL() string {
	u := "postgres"
	if d.runAs == "" {
		if cur, err := user.Current(); err == nil {
			u = cur.Username
		}
	}
	return fmt.Sprintf("postgres:///paddock?host=%s&port=5432&user=%s&sslmode=disable", d.sock, u)
}

func (d *devDB) cmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	path := filepath.Join(d.bin, name)
	var c *exec.Cmd
	if d.runAs != "" {
		c = exec.CommandContext(ctx, "runuser", append([]string{"-u", d.runAs, "--", path}, args...)...)
	} else {
		c = exec.CommandContext(ctx, path, args...)
	}
	c.Stdout, c.Stderr = d.log, d.log
	// Keep postgres out of our process group, so Ctrl-C reaches only us and
	// we stop it in order.
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return c
}

// Start initialises the data directory on first use, starts the server and
// creates the paddock database.
func (d *devDB) Start(ctx context.Context) error {
	for _, dir := range []string{d.dir, d.sock} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(d.dir, ".gitignore"), []byte("*\n"), 0o644); err != nil {
		return err
	}
	if d.runAs != "" {
		if err := exec.CommandContext(ctx, "chown", "-R", d.runAs, d.sock).Run(); err != nil {
			return fmt.Errorf("chown %s: %w", d.sock, err)
		}
	}
	if _, err := os.Stat(filepath.Join(d.data, "PG_VERSION")); err != nil {
		fmt.Fprintf(d.log, "paddock: creating a private PostgreSQL in %s\n", d.data)
		if err := os.MkdirAll(d.data, 0o700); err != nil {
			return err
		}
		if d.runAs != "" {
			if err := exec.CommandContext(ctx, "chown", d.runAs, d.data).Run(); err != nil {
				return fmt.Errorf("chown %s: %w", d.data, err)
			}
		}
		if err := d.cmd(ctx, "initdb", "-D", d.data, "--auth=trust", "--encoding=UTF8", "--no-instructions", "-U", d.superuser()).Run(); err != nil {
			return fmt.Errorf("initdb: %w", err)
		}
	}
	opts := fmt.Sprintf("-c listen_addresses='' -c unix_socket_directories='%s' -c port=5432 -c fsync=off -c max_connections=200", d.sock)
	// A server left running by a crashed `portal dev` is reused (and stopped on exit).
	status := d.cmd(ctx, "pg_ctl", "-D", d.data, "status")
	status.Stdout, status.Stderr = io.Discard, io.Discard
	if status.Run() == nil {
		d.started = true
		fmt.Fprintln(d.log, "paddock: reusing the private PostgreSQL that is already running")
	} else if err := d.startServer(ctx, opts); err != nil {
		return err
	}
	return d.createDatabase(ctx)
}

func (d *devDB) startServer(ctx context.Context, opts string) error {
	start := d.cmd(ctx, "pg_ctl", "-D", d.data, "-o", opts, "-l", filepath.Join(d.sock, "postgres.log"), "-w", "-t", "60", "start")
	if err := start.Run(); err != nil {
		return fmt.Errorf("start PostgreSQL (see %s): %w", filepath.Join(d.sock, "postgres.log"), err)
	}
	d.started = true
	return nil
}

func (d *devDB) createDatabase(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, strings.Replace(d.URL(), "/paddock?", "/postgres?", 1))
	if err != nil {
		return fmt.Errorf("connect to private PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'paddock')`).Scan(&exists); err != nil {
		return fmt.Errorf("query private PostgreSQL: %w", err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, `CREATE DATABASE paddock`); err != nil {
			return fmt.Errorf("create database paddock: %w", err)
		}
	}
	return nil
}

func (d *devDB) superuser() string {
	if d.runAs != "" {
		return d.runAs
	}
	if cur, err := user.Current(); err == nil {
		return cur.Username
	}
	return "postgres"
}

// Stop shuts the server down (fast mode: active connections are closed).
func (d *devDB) Stop() {
	if !d.started {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.cmd(ctx, "pg_ctl", "-D", d.data, "-m", "fast", "-w", "stop").Run(); err != nil {
		fmt.Fprintf(d.log, "paddock: stopping the private PostgreSQL: %v\n", err)
	}
}
