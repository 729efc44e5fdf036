package store

import "testing"

// Only the request states reach a query's text; anything else stays a
// parameter.
func TestStateLiteralWritesOnlyRequestStates(t *testing.T) {
	for in, want := range map[State]string{"running": "'running'", "pending_approval": "'pending_approval'"} {
		if got, ok := stateLiteral(in); !ok || got != want {
			t.Errorf("stateLiteral(%q) = %q, %v", in, got, ok)
		}
	}
	for _, in := range []State{"", "x' OR '1'='1", "Running", "run ning", "running;", "état", "sleeping"} {
		if got, ok := stateLiteral(in); ok {
			t.Errorf("stateLiteral(%q) wrote %q into the text", in, got)
		}
	}
	if idLiteral(-1) != "-1" || idLiteral(9007199254740993) != "9007199254740993" {
		t.Error("idLiteral")
	}
}
