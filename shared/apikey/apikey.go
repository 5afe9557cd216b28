// Package apikey generates and recognises API keys: "ww_" followed by 32
// random base62 characters. Only a key's SHA-256 hash and a short prefix are
// ever stored.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"math/big"
)

const (
	// Marker starts every key.
	Marker = "ww_"
	// RandomLen is the number of random base62 characters after the marker.
	RandomLen = 32
	// PrefixLen is the number of random characters kept in clear to let
	// people tell their keys apart.
	PrefixLen = 8
	alphabet  = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// Key is a freshly generated key. Plaintext is shown to its owner once.
type Key struct {
	Plaintext string
	Prefix    string
	Hash      [sha256.Size]byte
}

// Generate returns a new random key.
func Generate() (Key, error) {
	buf := make([]byte, RandomLen)
	max := big.NewInt(int64(len(alphabet)))
	for i := range buf {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return Key{}, fmt.Errorf("generate key: %w", err)
		}
		buf[i] = alphabet[n.Int64()]
	}
	plain := Marker + string(buf)
	return Key{Plaintext: plain, Prefix: string(buf[:PrefixLen]), Hash: sha256.Sum256([]byte(plain))}, nil
}

// WellFormed reports whether s has the shape of a key. It lets the API refuse
// garbage without a database lookup.
func WellFormed(s string) bool {
	if len(s) != len(Marker)+RandomLen || s[:len(Marker)] != Marker {
		return false
	}
	for i := len(Marker); i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

// Hash returns the SHA-256 of a key, as stored.
func Hash(s string) [sha256.Size]byte { return sha256.Sum256([]byte(s)) }

// Equal compares two hashes in constant time.
func Equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
