package main

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// querySeries is the portal's histogram of statement times
// (store.QueryMetrics), by the function that ran each statement.
const querySeries = "paddock_db_query_duration_seconds"

// queryMinShare is the fewest statements per answer a function must run to
// be counted as the page's: less often are the background jobs' polls and
// the caches' reloads, which run while any page is measured.
const queryMinShare = 0.05

// queryTime is one function's statements: how many and their summed
// seconds, from sending each to reading its last row.
type queryTime struct {
	n   uint64
	sum float64
}

type queryTimes map[string]queryTime

// scrapeQueries reads the portal's statement times from its /metrics.
func scrapeQueries(ctx context.Context, metricsURL string) (queryTimes, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read the portal's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read the portal's metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse the portal's metrics: %w", err)
	}
	f, ok := families[querySeries]
	if !ok {
		return nil, fmt.Errorf("the portal's metrics have no %s", querySeries)
	}
	out := queryTimes{}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "query" {
				out[l.GetValue()] = queryTime{n: m.GetHistogram().GetSampleCount(), sum: m.GetHistogram().GetSampleSum()}
			}
		}
	}
	return out, nil
}

// since is what ran between before and q.
func (q queryTimes) since(before queryTimes) queryTimes {
	out := queryTimes{}
	for k, v := range q {
		b := before[k]
		if v.n > b.n {
			out[k] = queryTime{n: v.n - b.n, sum: v.sum - b.sum}
		}
	}
	return out
}

// queryRun is one route's statements over one run of the load generator.
type queryRun struct {
	clients int
	answers int
	mean    time.Duration // the answers' mean time
	q       queryTimes
}

// perAnswer is how many statements of fn an answer ran.
func (r queryRun) perAnswer(fn string) float64 {
	if r.answers == 0 {
		return 0
	}
	return float64(r.q[fn].n) / float64(r.answers)
}

// meanOf is the mean time of one statement of fn.
func (r queryRun) meanOf(fn string) time.Duration {
	t := r.q[fn]
	if t.n == 0 {
		return 0
	}
	return time.Duration(t.sum / float64(t.n) * float64(time.Second))
}

// pageQueries writes one page's rows of the per-statement table, and the
// sentence that sums them: the functions that ran at least queryMinShare
// statements per answer in both runs, most time per answer first (alone).
func pageQueries(label string, alone, loaded queryRun) (rows []string, sentence string) {
	var fns []string
	left := 0
	seen := map[string]bool{}
	for _, q := range []queryTimes{alone.q, loaded.q} {
		for fn := range q {
			if seen[fn] {
				continue
			}
			seen[fn] = true
			if alone.perAnswer(fn) >= queryMinShare && loaded.perAnswer(fn) >= queryMinShare {
				fns = append(fns, fn)
			} else {
				left++
			}
		}
	}
	weight := func(r queryRun, fn string) time.Duration {
		return time.Duration(r.perAnswer(fn) * float64(r.meanOf(fn)))
	}
	slices.SortFunc(fns, func(a, b string) int {
		return cmp.Or(cmp.Compare(weight(alone, b), weight(alone, a)), strings.Compare(a, b))
	})
	var statements float64
	var inAlone, inLoaded time.Duration
	for _, fn := range fns {
		rows = append(rows, fmt.Sprintf("| %s | `%s` | %.2f | %s | %s | %s | %s |", label, fn, alone.perAnswer(fn),
			ms(alone.meanOf(fn)), ms(weight(alone, fn)), ms(loaded.meanOf(fn)), ms(weight(loaded, fn))))
		statements += alone.perAnswer(fn)
		inAlone += weight(alone, fn)
		inLoaded += weight(loaded, fn)
	}
	share := func(part, whole time.Duration) float64 {
		if whole == 0 {
			return 0
		}
		return 100 * float64(part) / float64(whole)
	}
	sentence = fmt.Sprintf("%s: %.2f statements per answer from %d functions; with %d client(s) an answer took %s on average, %s of it (%.0f%%) waiting on them; with %d clients %s, %s of it (%.0f%%)",
		label, statements, len(fns), alone.clients, ms(alone.mean), ms(inAlone), share(inAlone, alone.mean),
		loaded.clients, ms(loaded.mean), ms(inLoaded), share(inLoaded, loaded.mean))
	if left > 0 {
		sentence += fmt.Sprintf(" (%d function(s) that ran less than once per %.0f answers left out)", left, 1/queryMinShare)
	}
	return rows, sentence
}
