package kubetest

import (
	"net"
	"net/url"
	"strconv"
	"testing"
)

func TestParsePortRange(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"32768\t60999\n", 32768, true},
		{"1024 65535", 1024, true},
		{"", 0, false},
		{"32768", 0, false},
		{"60999\t32768\n", 0, false},
		{"0 100", 0, false},
		{"1024 70000", 0, false},
		{"a b", 0, false},
	} {
		got, err := parsePortRange(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("parsePortRange(%q) = %d, %v; want %d, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
}

// FreePort's ports lie below the kernel's ephemeral range, where no
// outgoing connection takes them, and can be listened on.
func TestFreePortIsBelowTheEphemeralRange(t *testing.T) {
	lo := ephemeralLow()
	if lo == 0 {
		t.Skip("the ephemeral range is unknown or leaves no room below it: FreePort asks the kernel")
	}
	for range 20 {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if port < minPort || port >= lo {
			t.Fatalf("FreePort() = %d, want a port in [%d, %d)", port, minPort, lo)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("listen on FreePort's %d: %v", port, err)
		}
		l.Close()
	}
}

// kube-apiserver, etcd and kubevirt-webhooks listen on ports FreePort
// chose, not on ones envtest or the kernel chose from the ephemeral range.
func TestProcessesListenBelowTheEphemeralRange(t *testing.T) {
	needsCluster(t)
	lo := ephemeralLow()
	if lo == 0 {
		t.Skip("the ephemeral range is unknown or leaves no room below it: FreePort asks the kernel")
	}
	seen := map[string]string{}
	for name, raw := range map[string]string{
		"kube-apiserver":    env.Config.Host,
		"etcd":              env.env.ControlPlane.Etcd.URL.String(),
		"kubevirt-webhooks": env.WebhookURL,
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		port, err := strconv.Atoi(u.Port())
		if err != nil {
			t.Fatalf("%s at %q: %v", name, raw, err)
		}
		if port < minPort || port >= lo {
			t.Errorf("%s listens on %d, want a port in [%d, %d)", name, port, minPort, lo)
		}
		if other, ok := seen[u.Port()]; ok {
			t.Errorf("%s and %s share port %d", name, other, port)
		}
		seen[u.Port()] = name
	}
}
