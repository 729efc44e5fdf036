// Package seed makes up a realistic history of requests (`portal dev
// --seed-history N`, the history benchmark), written by the store in bulk.
package seed

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"paddock/internal/store"
)

// History adds realistic historical requests, with the events Paddock
// would have written for them, until the database holds at least n
// requests; it returns how many it added. The requests spread over the two
// years before now, more of them recently and on working days; they belong
// to a score of teams and their developers (created as needed), use the
// templates in the database, and go through the lives requests go through:
// auto-approved or decided by a person after a wait, provisioned, running,
// stopped and started, extended, failed, deleted or expired. The same seed
// gives the same history. Rows are written with COPY, in batches that each
// commit; progress, if not nil, is told how many were added so far.
func History(ctx context.Context, s *store.Store, n int, now time.Time, seed uint64, progress func(added int)) (int, error) {
	have, err := s.RequestCount(ctx)
	if err != nil {
		return 0, fmt.Errorf("seed history: %w", err)
	}
	if have >= n {
		return 0, nil
	}
	g, err := newHistoryGen(ctx, s, now.UTC(), seed)
	if err != nil {
		return 0, err
	}
	todo := n - have
	times := g.creationTimes(todo)
	// Two connections copy batches at once; ids are reserved in order, so
	// that ids grow with creation time as they do in a real history.
	const batch = 20000
	grp, gctx := errgroup.WithContext(ctx)
	work := make(chan seedWork)
	var added atomic.Int64
	for range 2 {
		grp.Go(func() error {
			for w := range work {
				if err := seedBatch(gctx, s, g, w); err != nil {
					return err
				}
				done := int(added.Add(int64(len(w.ids))))
				if progress != nil {
					progress(done)
				}
			}
			return nil
		})
	}
	grp.Go(func() error {
		defer close(work)
		for off := 0; off < todo; off += batch {
			end := min(off+batch, todo)
			ids, err := s.ReserveRequestIDs(gctx, end-off)
			if err != nil {
				return fmt.Errorf("seed history: %w", err)
			}
			select {
			case work <- seedWork{offset: off, ids: ids, times: times[off:end]}:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	if err := grp.Wait(); err != nil {
		return int(added.Load()), err
	}
	if err := s.AnalyzeHistory(ctx); err != nil {
		return todo, fmt.Errorf("seed history: %w", err)
	}
	return todo, nil
}

// seedWork is one batch of requests to make up: their ids, reserved in
// order, and creation times.
type seedWork struct {
	offset int
	ids    []int64
	times  []time.Time
}

func seedBatch(ctx context.Context, s *store.Store, g *historyGen, w seedWork) error {
	reqs := make([][]any, 0, len(w.times))
	var evs [][]any
	for i, at := range w.times {
		r, es := g.request(w.ids[i], uint64(w.offset+i), at)
		reqs = append(reqs, r)
		evs = append(evs, es...)
	}
	if err := s.CopyHistory(ctx, reqs, evs); err != nil {
		return fmt.Errorf("seed history: %w", err)
	}
	return nil
}

type seedUser struct {
	id    int64
	login string
}

type seedTeam struct {
	id     int64
	name   string
	weight float64
	devs   []seedUser
}

type seedTemplate struct {
	id      int64
	version int
	spec    store.TemplateSpec
	weight  float64
}

// historyGen makes up requests. Every choice for request i comes from a
// generator seeded with (seed, i), so a history is reproducible.
type historyGen struct {
	now       time.Time
	seed      uint64
	teams     []seedTeam
	teamW     []float64
	templates []seedTemplate
	tplW      []float64
	approvers []seedUser
}

var seedTeamNames = []string{"payments", "billing", "checkout", "search", "identity", "data-platform", "ml-research",
	"mobile", "web-frontend", "observability", "security", "storage", "networking", "growth", "ledger", "fraud",
	"notifications", "catalog", "logistics", "support-tools"}

var seedFirstNames = []string{"ana", "ben", "chen", "dara", "eli", "fatima", "gus", "hana", "ivan", "jo", "kemal",
	"lena", "marco", "nia", "omar", "priya", "quinn", "rosa", "sam", "tariq", "uma", "vik", "wen", "yusuf", "zoe"}

// templateWeights says how popular the example templates are; others get 1.
var templateWeights = map[string]float64{"ubuntu-2404": 8, "fedora": 4, "cirros": 3, "centos-stream9": 4, "broken-demo": 0.3}

func newHistoryGen(ctx context.Context, s *store.Store, now time.Time, seed uint64) (*historyGen, error) {
	g := &historyGen{now: now, seed: seed}
	rng := rand.New(rand.NewPCG(seed, 0))
	for i, name := range seedTeamNames {
		t, err := s.EnsureTeam(ctx, name, name)
		if err != nil {
			return nil, err
		}
		st := seedTeam{id: t.ID, name: name, weight: 1 / math.Pow(float64(i+1), 0.6)}
		for j := range 4 + rng.IntN(9) {
			login := seedFirstNames[(i*7+j)%len(seedFirstNames)] + "." + name
			u, err := s.EnsureUser(ctx, login, login, store.RoleDeveloper, &t.ID)
			if err != nil {
				return nil, err
			}
			st.devs = append(st.devs, seedUser{u.ID, u.Login})
		}
		g.teams = append(g.teams, st)
		g.teamW = append(g.teamW, st.weight)
	}
	for _, a := range []struct {
		login string
		role  store.Role
	}{{"morgan.manager", store.RoleManager}, {"alex.manager", store.RoleManager}, {"pat.platform", store.RolePlatform}} {
		u, err := s.EnsureUser(ctx, a.login, a.login, a.role, nil)
		if err != nil {
			return nil, err
		}
		g.approvers = append(g.approvers, seedUser{u.ID, u.Login})
	}
	tpls, err := s.Templates(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range tpls {
		if len(t.Spec.Sizes) == 0 {
			continue
		}
		w, ok := templateWeights[t.Name]
		if !ok {
			w = 1
		}
		g.templates = append(g.templates, seedTemplate{id: t.ID, version: t.Version, spec: t.Spec, weight: w})
		g.tplW = append(g.tplW, w)
	}
	if len(g.templates) == 0 {
		return nil, fmt.Errorf("seed history: no templates to request; publish some first")
	}
	return g, nil
}

// creationTimes returns n request times over the two years before now,
// oldest first: the rate grows from 40 % to 100 % over the span (adoption),
// most requests fall on working days and in working hours.
func (g *historyGen) creationTimes(n int) []time.Time {
	rng := rand.New(rand.NewPCG(g.seed, math.MaxUint64))
	span := 104 * 7 * 24 * time.Hour
	start := g.now.Add(-span)
	out := make([]time.Time, n)
	for i := range out {
		// Inverse of the CDF of a density rising linearly from 0.4 to 1.
		u := rng.Float64()
		x := (-0.4 + math.Sqrt(0.16+0.84*u)) / 0.6
		t := start.Add(time.Duration(x * float64(span)))
		day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		if wd := day.Weekday(); (wd == time.Saturday || wd == time.Sunday) && rng.Float64() < 0.85 {
			day = day.AddDate(0, 0, -int((wd+1)%7)-1) // to the Friday before
		}
		hour := 7 + rng.Float64()*11
		if rng.Float64() < 0.1 {
			hour = rng.Float64() * 24
		}
		t = day.Add(time.Duration(hour * float64(time.Hour))).Truncate(time.Microsecond)
		if t.After(g.now) {
			t = g.now.Add(-time.Duration(rng.IntN(3600)) * time.Second).Truncate(time.Microsecond)
		}
		out[i] = t
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

var seedPrefixes = []string{"web", "api", "db", "ci-runner", "build", "dev", "test", "bench", "demo", "sandbox",
	"worker", "gpu", "k8s-lab", "kafka", "redis", "pg", "jenkins", "vpn-test", "perf", "debug"}

var seedJustifications = []string{
	"Load testing the %s service before the next release",
	"Reproduce customer bug %s reported by support",
	"CI runner for the %s repository",
	"Benchmark the new %s build against the old one",
	"Database migration rehearsal for %s",
	"Demo for the quarterly review of %s",
	"Debug a memory leak in %s",
	"Training workshop for new hires on %s",
	"Try the upgrade of %s to the next major version",
	"Security scan of the %s image",
	"Sandbox to evaluate %s for the roadmap",
}

var seedSubjects = []string{"checkout", "ledger", "search indexer", "payments gateway", "notification fan-out",
	"fraud scoring", "mobile backend", "billing export", "identity provider", "catalog sync", "PAY-4821", "OPS-1177",
	"SEC-2093", "Kafka cluster", "PostgreSQL 16", "nginx", "Grafana", "Terraform modules"}

var seedComments = []string{"", "ok", "approved for the release", "fine for two weeks", "go ahead", "approved; remember to delete it afterwards"}

var seedRejections = []string{"no budget this quarter", "use the shared staging cluster instead", "please use a smaller size", "duplicate of an existing VM"}

// seedFailures are reasons like the provisioner's (see provision/status.go).
var seedFailures = []struct {
	weight float64
	reason string
}{
	{5, "The VM's disk image could not be pulled. The image named by the template may not exist, or its registry is unreachable; tell the platform team which template you used."},
	{3, "No node in the cluster can run this VM right now (not enough free CPU or memory, or no node matches its requirements). Try a smaller size, or ask the platform team for capacity."},
	{2, "Importing the VM's disk failed. The image URL may be wrong or unreachable, or the storage could not be provisioned."},
	{1, "The VM keeps stopping right after it starts, so the cluster is waiting before each new try. Its recent events below may say why."},
	{0.5, "The VM's disk volume is missing."},
}

const seedSSHKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq5x1mQ4Vj0d3lSx8T5wO0x0e8fYl0m7q2i5b8l9cXo seeded@paddock"

func pick(rng *rand.Rand, weights []float64) int {
	var sum float64
	for _, w := range weights {
		sum += w
	}
	x := rng.Float64() * sum
	for i, w := range weights {
		if x < w {
			return i
		}
		x -= w
	}
	return len(weights) - 1
}

// logNormal returns a duration whose median is median, spread by sigma.
func logNormal(rng *rand.Rand, median time.Duration, sigma float64) time.Duration {
	return time.Duration(float64(median) * math.Exp(rng.NormFloat64()*sigma))
}

// seedStep is one event in a made-up life.
type seedStep struct {
	at     time.Time
	actor  *seedUser // a person, or nil for a part of Paddock named by name
	name   string
	kind   string
	to     store.State // "" for no change
	reason string
	// settle moves the step before now if it would come later, so that no
	// seeded request is left waiting for something that nothing will do
	// (an approval without an open approval, a VM that no job provisions).
	settle bool
	// desired, if set, is the owner's wish once the step happened.
	desired string
	// expires, if set, is the new lease end once the step happened.
	expires time.Time
}

// request makes up request id, made at created, and its events.
func (g *historyGen) request(id int64, i uint64, created time.Time) ([]any, [][]any) {
	rng := rand.New(rand.NewPCG(g.seed, i+1))
	team := g.teams[pick(rng, g.teamW)]
	dev := team.devs[rng.IntN(len(team.devs))]
	tpl := g.templates[pick(rng, g.tplW)]
	sp := tpl.spec
	sizeW := make([]float64, len(sp.Sizes))
	for j := range sizeW {
		sizeW[j] = 1 / float64(j+1)
	}
	size := sp.Sizes[pick(rng, sizeW)]
	cpu, mem := size.Resources()
	leases := []int{1, 3, 7, 7, 14, 14, 30, 60, 90}
	lease := leases[rng.IntN(len(leases))]
	name := seedPrefixes[rng.IntN(len(seedPrefixes))] + "-" + strconv.FormatInt(id, 36)
	just := ""
	if rng.Float64() < 0.8 {
		just = fmt.Sprintf(seedJustifications[rng.IntN(len(seedJustifications))], seedSubjects[rng.IntN(len(seedSubjects))])
	}
	auto := sp.AutoApprove && lease <= sp.MaxLeaseDays
	var decision string
	switch {
	case auto:
		decision = fmt.Sprintf("auto-approved: template allows auto-approval; lease %d days ≤ maximum %d", lease, sp.MaxLeaseDays)
	case !sp.AutoApprove:
		decision = "needs approval: template " + sp.Name + " requires approval"
	default:
		decision = fmt.Sprintf("needs approval: lease %d days exceeds the template's maximum of %d", lease, sp.MaxLeaseDays)
	}

	at := created.Add(time.Duration(rng.IntN(40)) * time.Millisecond)
	steps := []seedStep{{at: at, actor: &dev, kind: "submitted", to: store.StatePendingApproval,
		reason: fmt.Sprintf("%s/%s (v%d), size %s, lease %d days", sp.Name, name, tpl.version, size.Name, lease)}}
	at = at.Add(time.Duration(1+rng.IntN(20)) * time.Millisecond)
	approved := true
	if auto {
		steps = append(steps, seedStep{at: at, name: "policy", kind: "decision", to: store.StateApproved, reason: decision,
			expires: at.AddDate(0, 0, lease)})
	} else {
		steps = append(steps, seedStep{at: at, name: "policy", kind: "decision", to: store.StatePendingApproval, reason: decision})
		at = at.Add(logNormal(rng, 90*time.Minute, 1.3))
		approver := g.approvers[rng.IntN(len(g.approvers))]
		switch x := rng.Float64(); {
		case x < 0.03:
			steps = append(steps, seedStep{at: at, actor: &dev, kind: "action", to: store.StateDeleted, settle: true,
				reason: "withdrawn before a VM was created", desired: "deleted"})
			approved = false
		case x < 0.12:
			steps = append(steps, seedStep{at: at, actor: &approver, kind: "approval", to: store.StateRejected, settle: true,
				reason: "rejected: " + seedRejections[rng.IntN(len(seedRejections))]})
			approved = false
		default:
			comment := "approved"
			if c := seedComments[rng.IntN(len(seedComments))]; c != "" {
				comment += ": " + c
			}
			// The lease runs from approval.
			steps = append(steps, seedStep{at: at, actor: &approver, kind: "approval", to: store.StateApproved, settle: true,
				reason: comment, expires: at.AddDate(0, 0, lease)})
		}
	}
	if approved {
		steps = g.live(rng, steps, &dev, sp, team.name, name, at, at.AddDate(0, 0, lease))
	}

	// Play the steps in time order until now.
	slices.SortStableFunc(steps, func(a, b seedStep) int { return a.at.Compare(b.at) })
	state, reason, updated := store.State(""), "", created
	desired, expires := "running", created.AddDate(0, 0, lease)
	evs := make([][]any, 0, len(steps))
	for k, st := range steps {
		if st.at.After(g.now) {
			if !st.settle {
				break
			}
			st.at = updated.Add(g.now.Sub(updated) / 2)
			for j := k + 1; j < len(steps); j++ {
				steps[j].at = steps[j].at.Add(st.at.Sub(steps[k].at))
			}
		}
		var actorID *int64
		actor := st.name
		if st.actor != nil {
			actorID, actor = &st.actor.id, st.actor.login
		}
		to := st.to
		if to == "" {
			to = state
		}
		evs = append(evs, []any{id, st.at, actorID, actor, st.kind, string(state), string(to), st.reason})
		if to != state {
			state, reason = to, ""
			if to == store.StateFailed || to == store.StateExpired {
				reason = st.reason
			}
		}
		if st.desired != "" {
			desired = st.desired
		}
		if !st.expires.IsZero() {
			expires = st.expires
		}
		updated = st.at
	}
	r := []any{id, team.id, dev.id, tpl.id, tpl.version, size.Name, cpu, mem, name, seedSSHKey, lease, just,
		string(state), reason, decision, desired, created, updated, expires}
	return r, evs
}

// live plans an approved request's life from approval at at, with the
// lease ending at end.
func (g *historyGen) live(rng *rand.Rand, steps []seedStep, dev *seedUser, sp store.TemplateSpec, ns, name string, at, end time.Time) []seedStep {
	at = at.Add(time.Duration(300+rng.IntN(2500)) * time.Millisecond)
	steps = append(steps, seedStep{at: at, name: "provisioner", kind: "vm_created", to: store.StateProvisioning, settle: true,
		reason: "VirtualMachine " + ns + "/" + name + " created"})
	failP := 0.025
	if sp.Name == "broken-demo" {
		failP = 0.9
	}
	boot := logNormal(rng, 45*time.Second, 0.5)
	if !sp.Image.Ephemeral() {
		boot = logNormal(rng, 4*time.Minute, 0.6)
	}
	at = at.Add(boot)
	deleted := func(at time.Time) []seedStep {
		return []seedStep{
			{at: at, actor: dev, kind: "action", reason: "delete requested", desired: "deleted"},
			{at: at.Add(time.Duration(2+rng.IntN(20)) * time.Second), name: "provisioner", kind: "state",
				to: store.StateDeleted, reason: "VirtualMachine and its disks deleted"},
		}
	}
	if rng.Float64() < failP {
		fw := make([]float64, len(seedFailures))
		for j, f := range seedFailures {
			fw[j] = f.weight
		}
		steps = append(steps, seedStep{at: at, name: "cluster", kind: "state", to: store.StateFailed, settle: true,
			reason: seedFailures[pick(rng, fw)].reason})
		// Most failed requests are deleted by their owner.
		if rng.Float64() < 0.85 {
			steps = append(steps, deleted(at.Add(logNormal(rng, 3*time.Hour, 1.5)))...)
		}
		return steps
	}
	steps = append(steps, seedStep{at: at, name: "cluster", kind: "state", to: store.StateRunning, settle: true})
	// The owner may extend the lease, stop and start the VM, delete it
	// early, or let the lease run out.
	if rng.Float64() < 0.12 {
		ext := 7 * (1 + rng.IntN(2))
		t := at.Add(time.Duration(rng.Float64() * float64(end.Sub(at))))
		end = end.AddDate(0, 0, ext)
		steps = append(steps, seedStep{at: t, actor: dev, kind: "lease_extended", expires: end,
			reason: fmt.Sprintf("lease extended by %d days to %s", ext, end.Format("2006-01-02 15:04 UTC"))})
	}
	stopAt := end
	deleteEarly := rng.Float64() < 0.6
	if deleteEarly {
		stopAt = at.Add(time.Duration((0.1 + 0.9*rng.Float64()) * float64(end.Sub(at))))
	}
	for cycles := rng.IntN(4); cycles > 0 && rng.Float64() < 0.5; cycles-- {
		t := at.Add(logNormal(rng, 20*time.Hour, 1))
		up := t.Add(time.Duration(2+rng.IntN(15)) * time.Second).Add(logNormal(rng, 14*time.Hour, 1))
		if !up.Add(time.Minute).Before(stopAt) {
			break
		}
		steps = append(steps,
			seedStep{at: t, actor: dev, kind: "action", reason: "stop requested", desired: "stopped"},
			seedStep{at: t.Add(time.Duration(2+rng.IntN(15)) * time.Second), name: "cluster", kind: "state", to: store.StateStopped},
			seedStep{at: up, actor: dev, kind: "action", reason: "start requested", desired: "running"},
			seedStep{at: up.Add(time.Duration(10+rng.IntN(50)) * time.Second), name: "cluster", kind: "state", to: store.StateRunning})
		at = up.Add(time.Minute)
	}
	if deleteEarly {
		return append(steps, deleted(stopAt)...)
	}
	grace := 3 * 24 * time.Hour
	return append(steps,
		seedStep{at: end, name: "lease", kind: "lease_expired", to: store.StateExpired, desired: "stopped", reason: fmt.Sprintf(
			"The lease ended at %s: the VM is stopped (runStrategy: Halted) and will be deleted at %s unless the lease is extended.",
			end.Format("2006-01-02 15:04 UTC"), end.Add(grace).Format("2006-01-02 15:04 UTC"))},
		seedStep{at: end.Add(grace), name: "lease", kind: "lease_delete", desired: "deleted",
			reason: "The grace period of 3 days after the lease ended is over: deleting the VM and its disks."},
		seedStep{at: end.Add(grace + time.Duration(2+rng.IntN(20))*time.Second), name: "provisioner", kind: "state",
			to: store.StateDeleted, reason: "VirtualMachine and its disks deleted"})
}
