// Package webhooktest has helpers for tests of webhook targets.
package webhooktest

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// DNS is a resolver on a DNS server of its own on loopback that answers A
// queries for every name with ip after delay (and AAAA queries with no
// record), and counts the A queries per name.
func DNS(t testing.TB, delay time.Duration, ip [4]byte) (*net.Resolver, func(name string) int) {
	t.Helper()
	pc, err := (&net.ListenConfig{}).ListenPacket(context.Background(), "udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fake DNS: %v", err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	var mu sync.Mutex
	counts := map[string]int{}
	go func() {
		for {
			buf := make([]byte, 512)
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 17 {
				continue
			}
			q := buf[:n]
			var name []string
			i := 12
			for i < n && q[i] != 0 && i+1+int(q[i]) <= n {
				name = append(name, string(q[i+1:i+1+int(q[i])]))
				i += int(q[i]) + 1
			}
			if i+5 > n {
				continue
			}
			question := q[:i+5] // header and question, without the EDNS0 record
			isA := question[i+1] == 0 && question[i+2] == 1
			if isA {
				mu.Lock()
				counts[strings.Join(name, ".")]++
				mu.Unlock()
			}
			go func() {
				time.Sleep(delay)
				resp := append([]byte{}, question...)
				resp[2], resp[3] = 0x81, 0x80
				resp[6], resp[7], resp[8], resp[9], resp[10], resp[11] = 0, 0, 0, 0, 0, 0
				if isA {
					resp[7] = 1
					resp = append(resp, 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ip[0], ip[1], ip[2], ip[3])
				}
				_, _ = pc.WriteTo(resp, addr)
			}()
		}
	}()
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
	return res, func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		return counts[name]
	}
}
