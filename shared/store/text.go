package store

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/lib/pq"
)

// Postgres's text and jsonb refuse NUL and bytes that are not UTF-8 (the
// database's encoding): a statement carrying one fails as a whole. Text a
// client sends is checked with ValidText and refused with a 400 before
// anything is spent; text a guest produces (trap and error messages) is made
// storable with CleanText.

// ValidText reports whether s can be stored in a text or jsonb column: UTF-8
// without NUL.
func ValidText(s string) bool {
	return strings.IndexByte(s, 0) < 0 && utf8.ValidString(s)
}

// CleanText returns s made storable: each NUL and each run of bytes that
// are not UTF-8 becomes U+FFFD, and the result is cut to at most max bytes
// on a rune boundary (max <= 0: no limit).
func CleanText(s string, max int) string {
	if !ValidText(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	if max > 0 && len(s) > max {
		n := max
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n]
	}
	return s
}

// Rejected reports whether err is Postgres refusing the data of a statement
// (a data exception or an integrity constraint violation): trying the same
// statement again cannot succeed.
func Rejected(err error) bool {
	var pqErr *pq.Error
	if !errors.As(err, &pqErr) {
		return false
	}
	c := pqErr.Code.Class()
	return c == "22" || c == "23"
}
