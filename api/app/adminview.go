package app

import (
	"time"

	"github.com/google/uuid"

	"github.com/wasmwizard/wasmwizard/shared/store"
)

// What the account and key subcommands print: the admin API's shapes
// (without its pages), each with the fields its subcommand shows. The
// fields are in the order they have always been printed in (by name).

// listOut is a list, printed whole.
type listOut[T any] struct {
	Data []T `json:"data"`
}

func outAll[S, T any](items []S, out func(S) T) listOut[T] {
	l := listOut[T]{Data: make([]T, len(items))}
	for i, it := range items {
		l.Data[i] = out(it)
	}
	return l
}

// accountOut is an account; its webhook secret is printed at creation
// only.
type accountOut struct {
	CreatedAt     time.Time `json:"created_at"`
	ID            uuid.UUID `json:"id"`
	Name          string    `json:"name"`
	Tier          string    `json:"tier"`
	WebhookSecret string    `json:"webhook_secret,omitempty"`
}

func outAccount(a store.Account) accountOut {
	return accountOut{CreatedAt: a.CreatedAt, ID: a.ID, Name: a.Name, Tier: a.Tier}
}

// newKeyOut is a key just created, with the plaintext key (printed this
// once).
type newKeyOut struct {
	AccountID uuid.UUID `json:"account_id"`
	CreatedAt time.Time `json:"created_at"`
	ID        uuid.UUID `json:"id"`
	Key       string    `json:"key"`
	Name      string    `json:"name"`
	Prefix    string    `json:"prefix"`
}

// keyOut is a key of keys list.
type keyOut struct {
	AccountID uuid.UUID  `json:"account_id"`
	CreatedAt time.Time  `json:"created_at"`
	ID        uuid.UUID  `json:"id"`
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix"`
	RevokedAt *time.Time `json:"revoked_at"`
}

func outKey(k store.APIKey) keyOut {
	return keyOut{AccountID: k.AccountID, CreatedAt: k.CreatedAt, ID: k.ID, Name: k.Name, Prefix: k.Prefix,
		RevokedAt: k.RevokedAt}
}

// revokedKeyOut is a key keys revoke revoked.
type revokedKeyOut struct {
	AccountID uuid.UUID  `json:"account_id"`
	ID        uuid.UUID  `json:"id"`
	Prefix    string     `json:"prefix"`
	RevokedAt *time.Time `json:"revoked_at"`
}
