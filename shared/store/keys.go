package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/wasmwizard/wasmwizard/shared/apikey"
	"github.com/wasmwizard/wasmwizard/shared/apperr"
)

// APIKey is a stored key: never its plaintext.
type APIKey struct {
	ID         uuid.UUID  `db:"id"`
	AccountID  uuid.UUID  `db:"account_id"`
	Name       string     `db:"name"`
	Prefix     string     `db:"prefix"`
	Hash       []byte     `db:"hash"`
	CreatedAt  time.Time  `db:"created_at"`
	LastUsedAt *time.Time `db:"last_used_at"`
	RevokedAt  *time.Time `db:"revoked_at"`
}

// Principal is who a request acts as, resolved from an API key.
type Principal struct {
	KeyID     uuid.UUID
	AccountID uuid.UUID
	Tier      Tier
	// LastUsedAt is when the key's use was last recorded (see TouchKey).
	LastUsedAt *time.Time
}

// CreateKey mints a key for an account and returns the stored row with the
// plaintext, which is not kept anywhere.
func (s *Store) CreateKey(ctx context.Context, actor Actor, accountID uuid.UUID, name string) (APIKey, string, error) {
	k, err := apikey.Generate()
	if err != nil {
		return APIKey{}, "", err
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return APIKey{}, "", wrapDB(err, "begin")
	}
	defer func() { _ = tx.Rollback() }()
	var row APIKey
	err = tx.GetContext(ctx, &row, `
		INSERT INTO api_keys (id, account_id, name, prefix, hash)
		SELECT $1, id, $3, $4, $5 FROM accounts WHERE id = $2
		RETURNING *`, newID(), accountID, name, k.Prefix, k.Hash[:])
	if errors.Is(err, sql.ErrNoRows) {
		return APIKey{}, "", apperr.New(apperr.NotFound, "account %s does not exist", accountID)
	}
	if err != nil {
		return APIKey{}, "", wrapDB(err, "insert key")
	}
	if err := audit(ctx, tx, Event{AccountID: &accountID, Actor: actor, Action: "key.created",
		SubjectType: "api_key", SubjectID: row.ID.String(), Data: map[string]any{"name": name, "prefix": k.Prefix}}); err != nil {
		return APIKey{}, "", err
	}
	if err := tx.Commit(); err != nil {
		return APIKey{}, "", wrapDB(err, "commit key")
	}
	return row, k.Plaintext, nil
}

// LookupKey resolves a presented key to its principal. A revoked key, a key
// of a disabled account and an unknown key all answer unauthorized alike.
func (s *Store) LookupKey(ctx context.Context, presented string) (Principal, error) {
	unauthorized := apperr.New(apperr.Unauthorized, "the API key is not valid")
	if !apikey.WellFormed(presented) {
		return Principal{}, unauthorized
	}
	hash := apikey.Hash(presented)
	var row struct {
		KeyID      uuid.UUID  `db:"key_id"`
		AccountID  uuid.UUID  `db:"account_id"`
		Hash       []byte     `db:"hash"`
		LastUsedAt *time.Time `db:"last_used_at"`
		Tier
	}
	err := s.getPrepared(ctx, nil, &row, `
		SELECT k.id AS key_id, k.account_id, k.hash, k.last_used_at, t.name, `+tierColumns+`, t.created_at, t.updated_at
		FROM api_keys k
		JOIN accounts a ON a.id = k.account_id
		JOIN tiers t ON t.name = a.tier
		WHERE k.hash = $1 AND k.revoked_at IS NULL AND a.disabled_at IS NULL`, hash[:])
	if errors.Is(err, sql.ErrNoRows) {
		return Principal{}, unauthorized
	}
	if err != nil {
		return Principal{}, wrapDB(err, "look up key")
	}
	if !apikey.Equal(row.Hash, hash[:]) {
		return Principal{}, unauthorized
	}
	return Principal{KeyID: row.KeyID, AccountID: row.AccountID, Tier: row.Tier, LastUsedAt: row.LastUsedAt}, nil
}

// KeyUseResolution is how precisely last_used_at follows a key's use: it is
// written at most once per key in that time, so that recording use costs
// no write per request.
const KeyUseResolution = time.Minute

// TouchKey records that a key was used now, unless that was recorded less
// than KeyUseResolution ago.
func (s *Store) TouchKey(ctx context.Context, keyID uuid.UUID) error {
	_, err := s.db.ExecContext(ctx, `UPDATE api_keys SET last_used_at = now()
		WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))`,
		keyID, KeyUseResolution.Seconds())
	return wrapDB(err, "record key use")
}

// ListKeys returns a page of keys (of one account when accountID is set),
// newest first. Hashes are never returned to callers outside this package.
func (s *Store) ListKeys(ctx context.Context, accountID uuid.UUID, cursor string, limit int) (Page[APIKey], error) {
	after, err := cursorOrMax(cursor)
	if err != nil {
		return Page[APIKey]{}, err
	}
	var ks []APIKey
	q := `SELECT id, account_id, name, prefix, ''::bytea AS hash, created_at, last_used_at, revoked_at
		FROM api_keys WHERE id < $1`
	args := []any{after}
	if accountID != uuid.Nil {
		q += ` AND account_id = $3`
		args = append(args, limit+1, accountID)
	} else {
		args = append(args, limit+1)
	}
	q += ` ORDER BY id DESC LIMIT $2`
	if err := s.db.SelectContext(ctx, &ks, q, args...); err != nil {
		return Page[APIKey]{}, wrapDB(err, "list keys")
	}
	return paginate(ks, limit, func(k APIKey) uuid.UUID { return k.ID }), nil
}

// RevokeKey revokes a key at once; lookups refuse it from the next request
// on, on every replica. Revoking a revoked key changes nothing.
func (s *Store) RevokeKey(ctx context.Context, actor Actor, id uuid.UUID) (APIKey, error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return APIKey{}, wrapDB(err, "begin")
	}
	defer func() { _ = tx.Rollback() }()
	var k APIKey
	err = tx.GetContext(ctx, &k, `
		UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1
		RETURNING id, account_id, name, prefix, ''::bytea AS hash, created_at, last_used_at, revoked_at`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return APIKey{}, apperr.New(apperr.NotFound, "key %s does not exist", id)
	}
	if err != nil {
		return APIKey{}, wrapDB(err, "revoke key")
	}
	if err := audit(ctx, tx, Event{AccountID: &k.AccountID, Actor: actor, Action: "key.revoked", SubjectType: "api_key",
		SubjectID: id.String(), Data: map[string]any{"prefix": k.Prefix}}); err != nil {
		return APIKey{}, err
	}
	return k, wrapDB(tx.Commit(), "commit revoke")
}
