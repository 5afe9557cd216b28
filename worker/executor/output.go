package executor

// capped keeps the first limit bytes written to it and flags the rest as cut.
// It never fails a write, so the guest carries on as if its output went out.
type capped struct {
	limit     int
	buf       []byte
	truncated bool
}

func (c *capped) Write(p []byte) (int, error) {
	room := c.limit - len(c.buf)
	if room >= len(p) {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	if room > 0 {
		c.buf = append(c.buf, p[:room]...)
	}
	c.truncated = true
	return len(p), nil
}
