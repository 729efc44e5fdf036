package web

import (
	"testing"
	"time"
)

func TestWordsAgreeWithNumbers(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{nouns(0, "VM", "VMs"), "0 VMs"},
		{nouns(1, "VM", "VMs"), "1 VM"},
		{nouns(2, "VM uses", "VMs use"), "2 VMs use"},
		{until(-90 * time.Second), "1 minute ago"},
		{until(-20 * time.Second), "less than a minute ago"},
		{until(30 * time.Minute), "in 30 minutes"},
		{until(-60 * time.Minute), "60 minutes ago"},
		{until(3 * time.Hour), "in 3 hours"},
		{until(72 * time.Hour), "in 3 days"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
