// Package webhook signs and sends webhook deliveries and keeps them out of
// the network.
//
// Deliveries are signed per the Standard Webhooks specification. URLs are
// checked when a job is submitted, and every connection is checked again on
// the address actually dialled (so a DNS answer that changes between the
// two, a rebinding, cannot reach a private address).
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Policy says which targets are allowed.
type Policy struct {
	// AllowPrivate lets webhooks reach loopback, private, link-local and
	// other internal addresses (development and tests only).
	AllowPrivate bool
	// AllowHTTP allows http:// URLs besides https://.
	AllowHTTP bool
	// Resolver resolves host names (net.DefaultResolver when nil).
	Resolver *net.Resolver
}

// ErrForbidden is wrapped by every refusal of a target.
var ErrForbidden = errors.New("webhook target not allowed")

// Timeout bounds one attempt: connecting, sending, and the receiver's
// answer.
const Timeout = 10 * time.Second

// resolveTimeout bounds the resolution of a webhook URL's host at submit
// (of all the distinct hosts of a batch together).
const resolveTimeout = 3 * time.Second

// blockedV4 is the IANA IPv4 Special-Purpose Address Registry (every entry,
// globally reachable or not), multicast and limited broadcast, and the cloud
// metadata addresses outside it.
var blockedV4 = prefixes(
	"0.0.0.0/8",          // "this network"
	"10.0.0.0/8",         // private
	"100.64.0.0/10",      // shared address space (carrier-grade NAT)
	"127.0.0.0/8",        // loopback
	"169.254.0.0/16",     // link-local (cloud metadata)
	"172.16.0.0/12",      // private
	"192.0.0.0/24",       // IETF protocol assignments (incl. NAT64 discovery, PCP/TURN anycast)
	"192.0.2.0/24",       // documentation (TEST-NET-1)
	"192.31.196.0/24",    // AS112-v4
	"192.52.193.0/24",    // AMT
	"192.88.99.0/24",     // deprecated 6to4 relay anycast
	"192.168.0.0/16",     // private
	"192.175.48.0/24",    // direct delegation AS112
	"198.18.0.0/15",      // benchmarking
	"198.51.100.0/24",    // documentation (TEST-NET-2)
	"203.0.113.0/24",     // documentation (TEST-NET-3)
	"224.0.0.0/4",        // multicast
	"240.0.0.0/4",        // reserved, and 255.255.255.255 (limited broadcast)
	"100.100.100.200/32", // Alibaba Cloud metadata
)

// blockedV6 is the IANA IPv6 Special-Purpose Address Registry and the other
// non-global blocks; the forms that embed an IPv4 address and are routed to
// it are checked on that address instead (embeddedV4).
var blockedV6 = prefixes(
	"::/96",             // IPv4-compatible (deprecated), unspecified, loopback
	"::ffff:0:0:0/96",   // IPv4-translated (SIIT)
	"64:ff9b:1::/48",    // local-use IPv4/IPv6 translation
	"100::/64",          // discard-only
	"100:0:0:1::/64",    // dummy prefix
	"2001::/23",         // IETF protocol assignments (incl. Teredo 2001::/32, benchmarking, ORCHID)
	"2001:db8::/32",     // documentation
	"2620:4f:8000::/48", // direct delegation AS112
	"3fff::/20",         // documentation
	"5f00::/16",         // segment routing (SRv6) SIDs
	"fc00::/7",          // unique local
	"fe80::/10",         // link-local
	"fec0::/10",         // site-local (deprecated)
	"ff00::/8",          // multicast
	"fd00:ec2::254/128", // AWS metadata (inside fc00::/7 too)
)

// globalV6 is where IPv6 global unicast addresses are allocated; anything
// outside it (and outside NAT64's well-known prefix) is refused.
var globalV6 = netip.MustParsePrefix("2000::/3")

// Prefixes whose addresses embed an IPv4 address they are routed to.
var (
	nat64  = netip.MustParsePrefix("64:ff9b::/96") // well-known NAT64 prefix
	sixTo4 = netip.MustParsePrefix("2002::/16")    // 6to4
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// Allowed reports whether an address may be dialled for a webhook: a public
// address, in neither special-purpose registry, and, for an IPv6 address
// that embeds an IPv4 address it is routed to (IPv4-mapped, NAT64, 6to4),
// an embedded address that is allowed too.
func Allowed(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.WithZone("")
	if ip.Is4In6() {
		ip = ip.Unmap()
	}
	if ip.Is4() {
		for _, p := range blockedV4 {
			if p.Contains(ip) {
				return false
			}
		}
		return true
	}
	if v4, ok := embeddedV4(ip); ok {
		return Allowed(v4)
	}
	if !globalV6.Contains(ip) {
		return false
	}
	for _, p := range blockedV6 {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// embeddedV4 returns the IPv4 address that a NAT64 (64:ff9b::/96) or 6to4
// (2002::/16) address is routed to.
func embeddedV4(ip netip.Addr) (netip.Addr, bool) {
	b := ip.As16()
	switch {
	case nat64.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixTo4.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// blocked reports whether an address may not be dialled under the policy.
func (p Policy) blocked(ip netip.Addr) bool {
	return !p.AllowPrivate && !Allowed(ip)
}

// notAllowed is the refusal of a host. It never names the addresses the
// host resolved to, nor why they were refused: a tenant must not learn what
// names mean inside the platform's network.
func notAllowed(host string) error {
	return fmt.Errorf("%w: host %q is not allowed: it must resolve, within %s, to public addresses only",
		ErrForbidden, host, resolveTimeout)
}

// CheckURL validates a webhook URL at submit time: scheme, shape, and every
// address its host resolves to.
func (p Policy) CheckURL(ctx context.Context, raw string) error {
	u, host, err := p.checkShape(raw)
	if err != nil || u == nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	return p.checkHost(rctx, host)
}

// CheckURLs validates many webhook URLs (a batch) like CheckURL, resolving
// each distinct host once, all of them at the same time, within one overall
// deadline. The answer maps each URL to its error (nil: allowed).
func (p Policy) CheckURLs(ctx context.Context, raws []string) map[string]error {
	out := make(map[string]error, len(raws))
	hosts := map[string][]string{} // host → URLs that need it resolved
	for _, raw := range raws {
		if _, done := out[raw]; done {
			continue
		}
		u, host, err := p.checkShape(raw)
		out[raw] = err
		if err == nil && u != nil {
			hosts[host] = append(hosts[host], raw)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	type result struct {
		host string
		err  error
	}
	results := make(chan result, len(hosts))
	sem := make(chan struct{}, 16)
	for host := range hosts {
		go func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			results <- result{host, p.checkHost(rctx, host)}
		}()
	}
	for range hosts {
		r := <-results
		for _, raw := range hosts[r.host] {
			out[raw] = r.err
		}
	}
	return out
}

// checkShape checks what can be checked without DNS. u is nil when nothing
// is left to check (an allowed IP literal).
func (p Policy) checkShape(raw string) (u *url.URL, host string, err error) {
	u, err = url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return nil, "", fmt.Errorf("%w: not an absolute URL", ErrForbidden)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !p.AllowHTTP {
			return nil, "", fmt.Errorf("%w: use https (http is not allowed here)", ErrForbidden)
		}
	default:
		return nil, "", fmt.Errorf("%w: scheme %q", ErrForbidden, u.Scheme)
	}
	if u.User != nil {
		return nil, "", fmt.Errorf("%w: credentials in the URL", ErrForbidden)
	}
	host = u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if p.blocked(ip) {
			return nil, "", notAllowed(host)
		}
		return nil, host, nil
	}
	return u, host, nil
}

// checkHost resolves a host name and checks every address.
func (p Policy) checkHost(ctx context.Context, host string) error {
	res := p.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	addrs, err := res.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return notAllowed(host)
	}
	for _, ip := range addrs {
		if p.blocked(ip) {
			return notAllowed(host)
		}
	}
	return nil
}

// DescribeError says why a send failed, for the attempt's record that the
// tenant reads, without naming any address that was resolved or dialled.
func DescribeError(err error) string {
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var opErr *net.OpError
	switch {
	case errors.Is(err, ErrForbidden):
		return "host is not allowed (it resolved to an address that is not public)"
	case errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err):
		return fmt.Sprintf("no answer within %s", Timeout)
	case errors.As(err, &dnsErr):
		return "the host did not resolve"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "the connection was refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the connection was closed before an answer"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "the host is unreachable"
	case errors.As(err, &certErr):
		return "the receiver's TLS certificate was not accepted"
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		return "the TLS handshake failed"
	case strings.Contains(err.Error(), "tls:"), strings.Contains(err.Error(), "x509:"):
		return "the TLS handshake failed"
	}
	return "the request failed"
}

// Client returns an HTTP client for deliveries: Timeout per request, no
// redirects, no proxy, and a dialer that refuses blocked addresses on the
// connection itself.
func (p Policy) Client() *http.Client {
	dialer := &net.Dialer{
		Timeout: Timeout,
		Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip, err := netip.ParseAddr(host)
			if err != nil {
				return ErrForbidden
			}
			if p.blocked(ip) {
				return ErrForbidden
			}
			return nil
		},
	}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   Timeout,
		ResponseHeaderTimeout: Timeout,
	}
	return &http.Client{
		Timeout:   Timeout,
		Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a redirect is the receiver's answer, not followed
		},
	}
}

// Sign returns the webhook-signature header value for a message: one
// "v1,<base64 HMAC-SHA256>" per secret, space-separated (two during a
// secret rotation's overlap). Secrets are "whsec_" + base64.
func Sign(secrets []string, id string, ts time.Time, body []byte) (string, error) {
	var sigs []string
	for _, s := range secrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
		if err != nil {
			return "", fmt.Errorf("webhook secret: %w", err)
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + strconv.FormatInt(ts.Unix(), 10) + "."))
		mac.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(sigs, " "), nil
}

// Headers sets the Standard Webhooks headers on a request.
func Headers(h http.Header, id string, ts time.Time, signature string) {
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	h.Set("webhook-signature", signature)
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "WasmWizard-Webhooks/1")
}
