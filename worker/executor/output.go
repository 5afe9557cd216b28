package executor

// capped keeps the first limit bytes written to it and flags the rest as cut.
// It never fails a write, so the guest carries on as if its output went out.
// What it keeps goes to out as it is written (when out is set); with
// discard, it keeps no copy itself.
type capped struct {
	limit     int
	buf       []byte
	n         int
	truncated bool
	stream    Stream
	out       func(Stream, []byte)
	discard   bool
}

func (c *capped) Write(p []byte) (int, error) {
	keep := p
	if room := c.limit - c.n; room < len(p) {
		keep = p[:max(room, 0)]
		c.truncated = true
	}
	if len(keep) == 0 {
		return len(p), nil
	}
	c.n += len(keep)
	if !c.discard {
		c.buf = append(c.buf, keep...)
	}
	if c.out != nil {
		c.out(c.stream, keep)
	}
	return len(p), nil
}
