package web

import (
	"bytes"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
)

// Sessions are written as typed JSON: what is saved reads back with its
// types (scs's GetInt64 and GetString assert them), the same session
// always encodes to the same bytes (so touchStore can tell it did not
// change; gob writes a map's entries in varying order, and one save in
// ten of a session of two values came out different and was written back
// to the database), a session written by
// gob is still read, and a value of another type is refused.
func TestSessionCodecKeepsTypesIsStableAndReadsGob(t *testing.T) {
	deadline := time.Date(2026, 12, 7, 1, 2, 3, 4, time.UTC)
	values := map[string]any{sessionUserID: int64(42), sessProxyIdentity: "digest", sessOIDCStarted: int64(1700000000), sessOIDCNext: "/catalog"}
	var c sessionCodec
	b, err := c.Encode(deadline, values)
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		again, err := c.Encode(deadline, values)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("the same session encoded differently: %q then %q (%v)", b, again, err)
		}
	}
	check := func(name string, b []byte) {
		t.Helper()
		d, got, err := c.Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !d.Equal(deadline) || len(got) != len(values) {
			t.Fatalf("%s: %v %v", name, d, got)
		}
		for k, v := range values {
			if got[k] != v {
				t.Errorf("%s: %s = %#v, want %#v", name, k, got[k], v)
			}
		}
	}
	check("json", b)
	old, err := scs.GobCodec{}.Encode(deadline, values)
	if err != nil {
		t.Fatal(err)
	}
	check("gob", old)
	if _, err := c.Encode(deadline, map[string]any{"when": time.Now()}); err == nil {
		t.Error("a time.Time was saved in a session")
	}
	if _, _, err := c.Decode(append(append([]byte{}, sessionJSON...), "{broken"...)); err == nil {
		t.Error("a damaged session was read")
	}
}
