package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"paddock/internal/testdb"
)

// `portal dev --seed-history N` (here through its environment variable)
// seeds the history, refreshes the insight summary before serving, and the
// pages show both.
func TestDevSeedsHistoryForTheHistoryAndInsightPages(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewURL(t)
	p := startPortal(t, dbURL, "PADDOCK_SEED_HISTORY=300")
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.PostForm(p.base+"/dev/signin", url.Values{"login": {"manager"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	get := func(path string) string {
		resp, err := c.Get(p.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		return string(b)
	}
	if b := get("/history"); strings.Count(b, `data-testid="history-`) < 50 || !strings.Contains(b, `data-testid="history-next"`) {
		t.Error("the history does not list a full first page with a next page")
	}
	if b := get("/insight?weeks=52"); !strings.Contains(b, "Figures as of") || !strings.Contains(b, `data-testid="insight-teams"`) {
		t.Error("insight has no figures")
	}
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM requests`).Scan(&n); err != nil || n != 300 {
		t.Errorf("%d requests: %v", n, err)
	}
}
