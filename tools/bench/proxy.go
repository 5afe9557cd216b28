package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
)

// proxy forwards TCP connections to a server and counts what its client
// asks of it: Postgres round trips (the frontend's Sync and simple Query
// messages: lib/pq ends each statement, prepared or not, with one of them)
// or Redis commands (top-level RESP arrays: a Lua script is one command,
// a pipeline several). The harness puts one between each process and each
// server in its counting step only, since forwarding costs CPU of its own.
type proxy struct {
	l      net.Listener
	target string
	redis  bool
	n      atomic.Int64
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func startProxy(target string, redis bool) (*proxy, error) {
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{l: l, target: target, redis: redis}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *proxy) addr() string { return p.l.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		s, err := (&net.Dialer{}).DialContext(context.Background(), "tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		var count func([]byte)
		if p.redis {
			count = (&respCounter{n: &p.n}).feed
		} else {
			count = (&pgCounter{n: &p.n}).feed
		}
		go func() { _, _ = io.Copy(c, s); _ = c.Close() }()
		go func() {
			buf := make([]byte, 64<<10)
			for {
				k, err := c.Read(buf)
				if k > 0 {
					count(buf[:k])
					if _, werr := s.Write(buf[:k]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			_ = s.Close()
		}()
	}
}

func (p *proxy) close() {
	_ = p.l.Close()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
}

// pgCounter follows the frontend's side of the Postgres protocol: untyped
// messages (SSL or GSS requests, then the startup message) until the
// startup message, then typed ones (a type byte and a length).
type pgCounter struct {
	n       *atomic.Int64
	started bool
	hdr     []byte
	skip    int
}

func (c *pgCounter) feed(b []byte) {
	for len(b) > 0 {
		if c.skip > 0 {
			k := min(c.skip, len(b))
			c.skip -= k
			b = b[k:]
			continue
		}
		hlen := 5
		if !c.started {
			hlen = 8
		}
		k := min(hlen-len(c.hdr), len(b))
		c.hdr = append(c.hdr, b[:k]...)
		b = b[k:]
		if len(c.hdr) < hlen {
			return
		}
		if c.started {
			if c.hdr[0] == 'S' || c.hdr[0] == 'Q' {
				c.n.Add(1)
			}
			c.skip = int(binary.BigEndian.Uint32(c.hdr[1:5])) - 4
		} else {
			code := binary.BigEndian.Uint32(c.hdr[4:8])
			c.started = code != 80877103 && code != 80877104 // not SSLRequest or GSSENCRequest
			c.skip = int(binary.BigEndian.Uint32(c.hdr[0:4])) - 8
		}
		c.hdr = c.hdr[:0]
	}
}

// respCounter follows the commands a Redis client sends: arrays of bulk
// strings ("*n", then n times "$len" and len bytes), or inline commands.
type respCounter struct {
	n    *atomic.Int64
	line []byte
	args int // bulk strings left in the current command
	skip int // bytes of a bulk string (and its CRLF) left
}

func (c *respCounter) feed(b []byte) {
	for len(b) > 0 {
		if c.skip > 0 {
			k := min(c.skip, len(b))
			c.skip -= k
			b = b[k:]
			continue
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			c.line = append(c.line, b...)
			return
		}
		line := bytes.TrimRight(append(c.line, b[:i]...), "\r")
		c.line = c.line[:0]
		b = b[i+1:]
		switch {
		case len(line) == 0:
		case c.args == 0 && line[0] == '*':
			c.n.Add(1)
			c.args, _ = strconv.Atoi(string(line[1:]))
		case c.args > 0 && line[0] == '$':
			n, _ := strconv.Atoi(string(line[1:]))
			c.skip = n + 2
			c.args--
		case c.args == 0:
			c.n.Add(1) // an inline command
		}
	}
}
