package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/util/flowcontrol"

	"paddock/internal/provision"
)

// TestKubeRateLimitConfig reads PADDOCK_KUBE_QPS and PADDOCK_KUBE_BURST (and
// the flags over them), refuses what the clients cannot use, and checks that
// the clientsets made from the loaded kubeconfig (Kubernetes, KubeVirt and
// CDI) each carry the limit. The kubeconfig points at an address nobody
// serves: making clients calls no API.
func TestKubeRateLimitConfig(t *testing.T) {
	t.Parallel()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		env       map[string]string
		args      []string
		qps       float32
		burst     int
		wantError string
	}{
		{name: "defaults", qps: provision.DefaultKubeQPS, burst: provision.DefaultKubeBurst},
		{name: "environment", env: map[string]string{"PADDOCK_KUBE_QPS": "200", "PADDOCK_KUBE_BURST": "300"}, qps: 200, burst: 300},
		{name: "flags over environment", env: map[string]string{"PADDOCK_KUBE_QPS": "200"},
			args: []string{"--kube-qps", "7.5", "--kube-burst", "9"}, qps: 7.5, burst: 9},
		{name: "not a number", env: map[string]string{"PADDOCK_KUBE_QPS": "fast"}, wantError: `PADDOCK_KUBE_QPS must be a number of requests per second, not "fast"`},
		{name: "zero rate", env: map[string]string{"PADDOCK_KUBE_QPS": "0"}, wantError: "PADDOCK_KUBE_QPS (--kube-qps) must be above 0, not 0"},
		{name: "no burst", env: map[string]string{"PADDOCK_KUBE_BURST": "0"}, wantError: "PADDOCK_KUBE_BURST (--kube-burst) must be at least 1, not 0"},
		{name: "fractional burst", env: map[string]string{"PADDOCK_KUBE_BURST": "1.5"}, wantError: `PADDOCK_KUBE_BURST must be a whole number of requests, not "1.5"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var cfg config
			fs := newFlagSet()
			commonFlags(fs, &cfg, func(k string) string { return c.env[k] }, ":0", "kubernetes")
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			err := cfg.checkKube()
			if c.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantError) {
					t.Fatalf("error %v, want %q", err, c.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cfg.Kubeconfig = kubeconfig
			rc, err := cfg.restConfig()
			if err != nil {
				t.Fatal(err)
			}
			cluster, err := provision.NewKubernetesCluster(rc)
			if err != nil {
				t.Fatal(err)
			}
			// The groups of one clientset (KubeVirt's VMs and pools) share
			// one bucket: each bucket is drained once.
			var drained []flowcontrol.RateLimiter
			for _, g := range []struct {
				name string
				l    flowcontrol.RateLimiter
			}{
				{"kubernetes", cluster.Kube.CoreV1().RESTClient().GetRateLimiter()},
				{"kubevirt", cluster.Virt.KubevirtV1().RESTClient().GetRateLimiter()},
				{"pools", cluster.Virt.PoolV1beta1().RESTClient().GetRateLimiter()},
				{"cdi", cluster.CDI.CdiV1beta1().RESTClient().GetRateLimiter()},
			} {
				name, l := g.name, g.l
				if l == nil {
					t.Fatalf("%s client has no rate limiter", name)
				}
				if slices.Contains(drained, l) {
					continue
				}
				drained = append(drained, l)
				if l.QPS() != c.qps {
					t.Errorf("%s client: %g requests/s, want %g", name, l.QPS(), c.qps)
				}
				// A fresh token bucket holds burst tokens: that many requests
				// pass at once, plus what it refills while they are counted
				// (qps × the time counting took: a slow machine under the race
				// detector refilled one token in a run).
				n := 0
				start := time.Now()
				for l.TryAccept() && n <= c.burst {
					n++
				}
				refilled := int(float64(c.qps) * time.Since(start).Seconds())
				if n < c.burst || n > c.burst+refilled {
					t.Errorf("%s client: burst of %d (%d refilled while counting), want %d", name, n, refilled, c.burst)
				}
			}
		})
	}
}
