package client

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// Admin calls the admin routes (/v1/admin/…) with the operator's admin
// token (WIZARD_ADMIN_TOKEN).
type Admin struct{ c *Client }

// NewAdmin returns an Admin of the API at baseURL.
func NewAdmin(baseURL, adminToken string, opts ...Option) (*Admin, error) {
	c, err := New(baseURL, adminToken, opts...)
	if err != nil {
		return nil, err
	}
	return &Admin{c: c}, nil
}

// AdminAccount is an account as the admin API shows it. WebhookSecret is
// set only in CreateAccount's answer.
type AdminAccount struct {
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	Tier          string    `json:"tier"`
	WebhookSecret string    `json:"webhook_secret,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
}

// Key is an API key. Key (the plaintext) is set only in CreateKey's answer.
type Key struct {
	ID         string     `json:"id"`
	AccountID  string     `json:"account_id"`
	Name       string     `json:"name"`
	Key        string     `json:"key,omitempty"`
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// Tier is a tier's limits. Tiers have more fields than a client needs to
// name, so the object is kept whole.
type Tier map[string]any

// AuditEvent is a row of the platform's audit log.
type AuditEvent struct {
	ID          int64          `json:"id"`
	AccountID   *string        `json:"account_id"`
	Actor       string         `json:"actor"`
	Action      string         `json:"action"`
	SubjectType string         `json:"subject_type"`
	SubjectID   string         `json:"subject_id"`
	JobID       *string        `json:"job_id"`
	RequestID   string         `json:"request_id"`
	Data        map[string]any `json:"data"`
	CreatedAt   time.Time      `json:"created_at"`
}

// CreateAccount creates an account on a tier.
func (a *Admin) CreateAccount(ctx context.Context, name, tier string) (*AdminAccount, error) {
	var out AdminAccount
	return &out, a.c.postJSON(ctx, http.MethodPost, "/v1/admin/accounts", map[string]string{"name": name, "tier": tier}, false, &out)
}

// ListAccounts reads a page of accounts.
func (a *Admin) ListAccounts(ctx context.Context, o ListOptions) (*Page[AdminAccount], error) {
	var p Page[AdminAccount]
	return &p, a.c.get(ctx, "/v1/admin/accounts", listQuery(o), &p)
}

// SetAccountTier moves an account to another tier.
func (a *Admin) SetAccountTier(ctx context.Context, id, tier string) (*AdminAccount, error) {
	var out AdminAccount
	return &out, a.c.postJSON(ctx, http.MethodPatch, "/v1/admin/accounts/"+seg(id), map[string]string{"tier": tier}, true, &out)
}

// CreateKey creates an API key for an account; its plaintext is in Key.
func (a *Admin) CreateKey(ctx context.Context, accountID, name string) (*Key, error) {
	var out Key
	return &out, a.c.postJSON(ctx, http.MethodPost, "/v1/admin/accounts/"+seg(accountID)+"/keys", map[string]string{"name": name}, false, &out)
}

// ListKeys reads a page of keys.
func (a *Admin) ListKeys(ctx context.Context, o ListOptions) (*Page[Key], error) {
	var p Page[Key]
	return &p, a.c.get(ctx, "/v1/admin/keys", listQuery(o), &p)
}

// RevokeKey revokes a key.
func (a *Admin) RevokeKey(ctx context.Context, id string) error {
	_, err := a.c.do(ctx, request{method: http.MethodDelete, path: "/v1/admin/keys/" + seg(id), safe: true}, nil)
	return err
}

// ListTiers reads every tier.
func (a *Admin) ListTiers(ctx context.Context) ([]Tier, error) {
	var p Page[Tier]
	return p.Data, a.c.get(ctx, "/v1/admin/tiers", nil, &p)
}

// CreateTier creates a tier from its fields (docs/API.md, "Tier").
func (a *Admin) CreateTier(ctx context.Context, fields Tier) (Tier, error) {
	var out Tier
	return out, a.c.postJSON(ctx, http.MethodPost, "/v1/admin/tiers", fields, false, &out)
}

// UpdateTier changes some of a tier's fields.
func (a *Admin) UpdateTier(ctx context.Context, name string, fields Tier) (Tier, error) {
	var out Tier
	return out, a.c.postJSON(ctx, http.MethodPatch, "/v1/admin/tiers/"+seg(name), fields, true, &out)
}

// Queues reads GET /v1/admin/queues as it is.
func (a *Admin) Queues(ctx context.Context) (json.RawMessage, error) {
	var out json.RawMessage
	return out, a.c.get(ctx, "/v1/admin/queues", nil, &out)
}

// AuditFilter selects audit rows.
type AuditFilter struct {
	AccountID, JobID, Action string
	ListOptions
}

// Audit reads a page of the audit log.
func (a *Admin) Audit(ctx context.Context, f AuditFilter) (*Page[AuditEvent], error) {
	q := listQuery(f.ListOptions)
	for k, v := range map[string]string{"account_id": f.AccountID, "job_id": f.JobID, "action": f.Action} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var p Page[AuditEvent]
	return &p, a.c.get(ctx, "/v1/admin/audit", q, &p)
}
