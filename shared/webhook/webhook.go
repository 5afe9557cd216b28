// Package webhook signs and sends webhook deliveries per the Standard
// Webhooks specification, and keeps them from being aimed inside the
// network: URLs are checked when a job is submitted, and every connection is
// checked again on the address actually dialled (so a DNS answer that
// changes between the two, a rebinding, cannot reach a private address).
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
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

// metadata addresses of cloud providers that are not in a private range.
var metadata = []netip.Prefix{
	netip.MustParsePrefix("100.100.100.200/32"), // Alibaba
	netip.MustParsePrefix("fd00:ec2::254/128"),  // AWS IPv6
}

// blocked reports why an address may not be dialled, or "".
func (p Policy) blocked(ip netip.Addr) string {
	if p.AllowPrivate {
		return ""
	}
	ip = ip.Unmap()
	switch {
	case ip.IsLoopback():
		return "loopback"
	case ip.IsPrivate():
		return "private"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "link-local (cloud metadata)"
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return "multicast"
	case ip.IsUnspecified():
		return "unspecified"
	case !ip.IsGlobalUnicast():
		return "not a global unicast address"
	}
	for _, m := range metadata {
		if m.Contains(ip) {
			return "cloud metadata"
		}
	}
	// Shared address space (carrier-grade NAT), benchmarking and reserved
	// ranges are internal too.
	for _, r := range []string{"100.64.0.0/10", "198.18.0.0/15", "0.0.0.0/8", "240.0.0.0/4", "64:ff9b:1::/48"} {
		if netip.MustParsePrefix(r).Contains(ip) {
			return "reserved"
		}
	}
	return ""
}

// CheckURL validates a webhook URL at submit time: scheme, shape, and every
// address its host resolves to.
func (p Policy) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%w: not an absolute URL", ErrForbidden)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !p.AllowHTTP {
			return fmt.Errorf("%w: use https (http is not allowed here)", ErrForbidden)
		}
	default:
		return fmt.Errorf("%w: scheme %q", ErrForbidden, u.Scheme)
	}
	if u.User != nil {
		return fmt.Errorf("%w: credentials in the URL", ErrForbidden)
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if why := p.blocked(ip); why != "" {
			return fmt.Errorf("%w: %s address %s", ErrForbidden, why, ip)
		}
		return nil
	}
	res := p.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	addrs, err := res.LookupNetIP(rctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return fmt.Errorf("%w: host %q does not resolve", ErrForbidden, host)
	}
	for _, ip := range addrs {
		if why := p.blocked(ip); why != "" {
			return fmt.Errorf("%w: %q resolves to %s address %s", ErrForbidden, host, why, ip.Unmap())
		}
	}
	return nil
}

// Client returns an HTTP client for deliveries: a 15 s timeout, no
// redirects, no proxy, and a dialer that refuses blocked addresses on the
// connection itself.
func (p Policy) Client() *http.Client {
	dialer := &net.Dialer{
		Timeout: 10 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip, err := netip.ParseAddr(host)
			if err != nil {
				return fmt.Errorf("%w: %s", ErrForbidden, address)
			}
			if why := p.blocked(ip); why != "" {
				return fmt.Errorf("%w: %s address %s", ErrForbidden, why, ip.Unmap())
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
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 15 * time.Second,
	}
	return &http.Client{
		Timeout:   15 * time.Second,
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
