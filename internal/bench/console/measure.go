package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"paddock/internal/guestconsole"
	"paddock/internal/kubetest"
	"paddock/internal/provision"
	"paddock/internal/store"
)

// counter counts the bytes read through it.
type counter struct {
	io.ReadWriter
	n int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.ReadWriter.Read(p)
	c.n += int64(n)
	return n, err
}

// rate is the throughput of one path.
type rate struct {
	bytes   int64
	took    time.Duration
	frames  int
	rounds  []float64 // MB/s of each round
	perTurn stats     // one full update: request sent to last pixel read
}

func (r rate) mbps() float64 { return float64(r.bytes) / 1e6 / r.took.Seconds() }

// throughput opens the VNC console on every path and reads full-screen
// updates, one request at a time as a viewer asks for them, each path in
// turn for o.frames updates per round; the order of the paths rotates
// from round to round. Every update's pixel is checked against the
// stand-in's colour, so that a path that delivers garbage fails the run.
func (r *rig) throughput(ctx context.Context, o options) ([]rate, error) {
	type session struct {
		conn io.ReadWriteCloser
		c    *counter
		v    *guestconsole.Viewer
	}
	sessions := make([]session, len(r.paths))
	defer func() {
		for _, s := range sessions {
			if s.conn != nil {
				s.conn.Close()
			}
		}
	}()
	for i, p := range r.paths {
		conn, err := p.open(ctx, provision.ConsoleVNC)
		if err != nil {
			return nil, fmt.Errorf("%s: open: %w", p.name, err)
		}
		c := &counter{ReadWriter: conn}
		v, err := guestconsole.Dial(c)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("%s: RFB handshake: %w", p.name, err)
		}
		if v.Name != r.vm {
			conn.Close()
			return nil, fmt.Errorf("%s: desktop name %q, want %q", p.name, v.Name, r.vm)
		}
		sessions[i] = session{conn: conn, c: c, v: v}
		r.screen = fmt.Sprintf("%d×%d", v.Width, v.Height)
	}
	frame := func(s session, name string) error {
		px, err := s.v.Frame(5, 5)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if px != kubetest.ConsoleColour {
			return fmt.Errorf("%s: pixel %v, want the stand-in's %v", name, px, kubetest.ConsoleColour)
		}
		return nil
	}
	for i, s := range sessions {
		for range o.warmup {
			if err := frame(s, r.paths[i].name); err != nil {
				return nil, err
			}
		}
	}
	out := make([]rate, len(r.paths))
	turns := make([][]time.Duration, len(r.paths))
	for round := range o.rounds {
		for k := range r.paths {
			i := (round + k) % len(r.paths)
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			s := sessions[i]
			before := s.c.n
			start := time.Now()
			for range o.frames {
				t := time.Now()
				if err := frame(s, r.paths[i].name); err != nil {
					return nil, err
				}
				turns[i] = append(turns[i], time.Since(t))
			}
			took := time.Since(start)
			n := s.c.n - before
			out[i].bytes += n
			out[i].took += took
			out[i].frames += o.frames
			out[i].rounds = append(out[i].rounds, float64(n)/1e6/took.Seconds())
		}
	}
	for i := range out {
		out[i].perTurn = summarise(turns[i])
	}
	return out, nil
}

// echo opens the serial console on every path, waits for the login
// prompt, then types one character at a time and waits for its echo, the
// paths taking turns sample by sample (the order rotating).
func (r *rig) echo(ctx context.Context, o options) ([]stats, error) {
	conns := make([]io.ReadWriteCloser, len(r.paths))
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i, p := range r.paths {
		conn, err := p.open(ctx, provision.ConsoleSerial)
		if err != nil {
			return nil, fmt.Errorf("%s: open: %w", p.name, err)
		}
		conns[i] = conn
		if _, err := guestconsole.ReadUntil(conn, r.vm+" login: "); err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
	}
	var b [1]byte
	trip := func(i int) (time.Duration, error) {
		start := time.Now()
		if _, err := conns[i].Write([]byte{'x'}); err != nil {
			return 0, fmt.Errorf("%s: write: %w", r.paths[i].name, err)
		}
		if _, err := io.ReadFull(conns[i], b[:]); err != nil {
			return 0, fmt.Errorf("%s: read the echo: %w", r.paths[i].name, err)
		}
		d := time.Since(start)
		if b[0] != 'x' {
			return 0, fmt.Errorf("%s: echo %q, want \"x\"", r.paths[i].name, b[0])
		}
		return d, nil
	}
	samples := make([][]time.Duration, len(r.paths))
	for n := range o.warmup + o.echoes {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for k := range r.paths {
			i := (n + k) % len(r.paths)
			d, err := trip(i)
			if err != nil {
				return nil, err
			}
			if n >= o.warmup {
				samples[i] = append(samples[i], d)
			}
		}
	}
	out := make([]stats, len(r.paths))
	for i := range out {
		out[i] = summarise(samples[i])
	}
	return out, nil
}

// opens times opening the VNC console up to the end of the RFB handshake
// (ServerInit read), the paths taking turns; each console is closed before
// the next opens.
func (r *rig) opens(ctx context.Context, o options) ([]stats, error) {
	samples := make([][]time.Duration, len(r.paths))
	for n := range o.connects {
		for k := range r.paths {
			i := (n + k) % len(r.paths)
			start := time.Now()
			conn, err := r.paths[i].open(ctx, provision.ConsoleVNC)
			if err != nil {
				return nil, fmt.Errorf("%s: open: %w", r.paths[i].name, err)
			}
			_, err = guestconsole.Dial(conn)
			d := time.Since(start)
			conn.Close()
			if err != nil {
				return nil, fmt.Errorf("%s: RFB handshake: %w", r.paths[i].name, err)
			}
			samples[i] = append(samples[i], d)
		}
	}
	out := make([]stats, len(r.paths))
	for i := range out {
		out[i] = summarise(samples[i])
	}
	return out, nil
}

// audited waits until Paddock has audited want console sessions and
// returns how many it did.
func (r *rig) audited(ctx context.Context, want int) (int, error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		var n int
		if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE action = $1`, store.AuditConsoleSession).Scan(&n); err != nil {
			return 0, err
		}
		if n >= want || time.Now().After(deadline) {
			return n, nil
		}
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
