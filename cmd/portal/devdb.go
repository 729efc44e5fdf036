package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
// it exits. When Paddock runs as root, the server runs as the postgres user,
// who may not be able to enter the checkout (root's home is private, as is
// a `mktemp -d` directory): its data and socket then live in a directory of
// this checkout's own under the postgres user's home (see rootDataDir).
type devDB struct {
	dir     string // .paddock
	data    string // .paddock/pg, or <postgres home>/paddock-<hash>/pg
	sock    string // .paddock/run, or <postgres home>/paddock-<hash>/run
	bin     string
	runAs   *user.User // when running as root: the user that runs postgres
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
		pg, err := user.Lookup("postgres")
		if err != nil {
			return nil, errors.New("running as root, and there is no 'postgres' user to run the private PostgreSQL as; run `make dev` as a normal user or set DATABASE_URL")
		}
		d.runAs = pg
		// A cluster made under the checkout by an earlier Paddock was
		// reachable by postgres then: keep it, with its data.
		if _, err := os.Stat(filepath.Join(d.data, "PG_VERSION")); err != nil {
			base := rootDataDir(pg.HomeDir, abs)
			d.data, d.sock = filepath.Join(base, "pg"), filepath.Join(base, "run")
		}
	}
	return d, nil
}

// rootDataDir is where the private cluster of the checkout whose data
// directory is abs lives when it runs as the postgres user: in that user's
// home (which it can always enter, and which no tmp cleaner empties), or in
// /var/tmp when it has none; one directory per checkout, named by a hash of
// its path, so that two checkouts never share a cluster and the same
// checkout finds its own again (and a server left running by a crash).
func rootDataDir(home, abs string) string {
	sum := sha256.Sum256([]byte(abs))
	name := "paddock-" + hex.EncodeToString(sum[:6])
	if fi, err := os.Stat(home); err != nil || !fi.IsDir() || home == "/" {
		return filepath.Join("/var/tmp", name)
	}
	return filepath.Join(home, name)
}

// URL is the connection string of the private server.
func (d *devDB) URL() string {
	u := "postgres"
	if d.runAs == nil {
		if cur, err := user.Current(); err == nil {
			u = cur.Username
		}
	}
	return fmt.Sprintf("postgres:///paddock?host=%s&port=5432&user=%s&sslmode=disable", d.sock, u)
}

func (d *devDB) cmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	path := filepath.Join(d.bin, name)
	var c *exec.Cmd
	if d.runAs != nil {
		c = exec.CommandContext(ctx, "runuser", append([]string{"-u", d.runAs.Username, "--", path}, args...)...)
		// Its user may not be able to enter our working directory.
		c.Dir = filepath.Dir(d.data)
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
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d.dir, ".gitignore"), []byte("*\n"), 0o644); err != nil {
		return err
	}
	// The server's own directories: only its user enters them (initdb
	// insists on 0700 for the data directory).
	for _, dir := range []string{d.sock, d.data} {
		if err := d.ownDir(dir); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(d.data, "PG_VERSION")); err != nil {
		fmt.Fprintf(d.log, "paddock: creating a private PostgreSQL in %s\n", d.data)
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

// ownDir creates dir (and its parents) with mode 0700 and, when the server
// runs as another user, gives dir and the parents this created to that
// user: they are the server's.
func (d *devDB) ownDir(dir string) error {
	var made []string
	for p := dir; ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil || p == filepath.Dir(p) {
			break
		}
		made = append(made, p)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if d.runAs == nil {
		return nil
	}
	uid, err := strconv.Atoi(d.runAs.Uid)
	if err != nil {
		return fmt.Errorf("uid of %s: %w", d.runAs.Username, err)
	}
	gid, err := strconv.Atoi(d.runAs.Gid)
	if err != nil {
		return fmt.Errorf("gid of %s: %w", d.runAs.Username, err)
	}
	if len(made) == 0 {
		made = []string{dir}
	}
	for _, p := range made {
		if err := os.Chown(p, uid, gid); err != nil {
			return fmt.Errorf("give %s to %s: %w", p, d.runAs.Username, err)
		}
	}
	return nil
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
	if d.runAs != nil {
		return d.runAs.Username
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
