package store_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"paddock/internal/store"
	"paddock/internal/testdb"
)

// BenchmarkSubmitSustained measures auto-approved submits per second from
// 20 concurrent submitters, all in one team and spread over 20 teams, each
// team under a quota far above what the run uses (so every submit does the
// quota arithmetic). It runs against the real PostgreSQL of the tests:
//
//	go test -run '^$' -bench SubmitSustained -benchtime 2000x ./internal/store/
func BenchmarkSubmitSustained(b *testing.B) {
	for _, teams := range []int{1, 20} {
		b.Run(fmt.Sprintf("submitters=20/teams=%d", teams), func(b *testing.B) {
			benchSubmits(b, 20, teams)
		})
	}
}

func benchSubmits(b *testing.B, submitters, teams int) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(testdb.NewURL(b))
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = int32(submitters + 2)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	st := store.New(pool)
	jobs, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	st.SetJobClient(jobs)
	if _, _, err := st.PublishTemplate(ctx, testTemplate("ubuntu", true), nil); err != nil {
		b.Fatal(err)
	}
	big := store.MaxQuota
	users := make([]store.User, teams)
	teamIDs := make([]int64, teams)
	for i := range teams {
		team, err := st.EnsureTeam(ctx, "team"+strconv.Itoa(i), "team"+strconv.Itoa(i))
		if err != nil {
			b.Fatal(err)
		}
		if err := st.SetTeamQuota(ctx, store.Quota{TeamID: team.ID, VCPU: &big, VMs: &big}, store.ActorPolicy); err != nil {
			b.Fatal(err)
		}
		if users[i], err = st.EnsureUser(ctx, "dev"+strconv.Itoa(i), "Dev", store.RoleDeveloper, &team.ID); err != nil {
			b.Fatal(err)
		}
		teamIDs[i] = team.ID
	}
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range submitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := w % teams
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				_, err := st.SubmitRequest(ctx, store.NewRequest{TeamID: teamIDs[k], Requester: users[k], Template: "ubuntu",
					Size: "small", Name: "vm-" + strconv.FormatInt(i, 10), SSHPublicKey: sshKey, LeaseDays: 7, Justification: "bench"})
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "submits/s")
}
