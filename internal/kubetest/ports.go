package kubetest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
)

// FreePort returns a loopback TCP port that was free a moment ago, for a
// process that will listen on it itself (kube-apiserver, etcd,
// kubevirt-webhooks, the controllers, a test's proxy coming back up).
//
// Between this check and that process's listen the port is free for anyone
// to take. A port the kernel hands out for 127.0.0.1:0 lies in its
// ephemeral range, the range it also takes the source ports of outgoing
// connections from; on a machine busy with tests (API clients, database
// pools) one of those took such a port before kubevirt-webhooks could bind
// it. So FreePort picks a port below that range, where only another
// listener can take it, and falls back to the kernel's choice when the
// range is unknown or leaves no room below it.
func FreePort() (int, error) {
	if lo := ephemeralLow(); lo > 0 {
		for range 64 {
			port := minPort + rand.IntN(lo-minPort)
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				continue // taken: try another
			}
			l.Close()
			return port, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("kubetest: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreePort picks from [minPort, the ephemeral range's first port), when
// that holds at least minRoom ports.
const (
	minPort = 10000
	minRoom = 1000
)

// ephemeralLow returns the first port of the kernel's ephemeral range
// (Linux: net.ipv4.ip_local_port_range), or 0 when it cannot be read or
// leaves fewer than minRoom ports above minPort.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	lo, err := parsePortRange(string(b))
	if err != nil || lo-minPort < minRoom {
		return 0
	}
	return lo
}

// parsePortRange reads ip_local_port_range ("32768\t60999\n") and returns
// its first port.
func parsePortRange(s string) (int, error) {
	var lo, hi int
	if _, err := fmt.Sscan(s, &lo, &hi); err != nil {
		return 0, fmt.Errorf("want two ports: %w", err)
	}
	if lo < 1 || hi > 65535 || lo > hi {
		return 0, fmt.Errorf("%d–%d is not a port range", lo, hi)
	}
	return lo, nil
}
