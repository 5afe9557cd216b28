package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/wasmwizard/wasmwizard/shared/apiobject"
	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

// Accounts: the caller's own (GET /v1/account, its webhook secret's
// rotation) and the admin's routes under /v1/admin/accounts.

type accountView struct {
	ID            uuid.UUID `json:"id"`
	Name          string    `json:"name"`
	Tier          string    `json:"tier"`
	WebhookSecret string    `json:"webhook_secret,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
}

func viewAccount(a store.Account) accountView {
	return accountView{ID: a.ID, Name: a.Name, Tier: a.Tier, WebhookSecret: a.WebhookSecret, CreatedAt: a.CreatedAt}
}

// viewAccountNoSecret is the admin's view of an account after its creation:
// the webhook secret is shown at creation and to the account itself only.
func viewAccountNoSecret(a store.Account) accountView {
	v := viewAccount(a)
	v.WebhookSecret = ""
	return v
}

// accountDetailView is GET /v1/account: the caller's account, its tier's
// limits and its usage.
type accountDetailView struct {
	CreatedAt     time.Time  `json:"created_at"`
	ID            uuid.UUID  `json:"id"`
	Limits        limitsView `json:"limits"`
	Name          string     `json:"name"`
	Tier          string     `json:"tier"`
	Usage         usageView  `json:"usage"`
	WebhookSecret string     `json:"webhook_secret"`
}

func viewAccountDetail(a store.Account, t store.Tier, u store.Usage) accountDetailView {
	return accountDetailView{CreatedAt: a.CreatedAt, ID: a.ID, Limits: viewLimits(t), Name: a.Name, Tier: a.Tier,
		Usage: viewUsage(u), WebhookSecret: a.WebhookSecret}
}

// limitsView is what a tier grants an account (a tier without its name,
// queue weight and timestamps).
type limitsView struct {
	DefaultMemoryMB       int   `json:"default_memory_mb"`
	DefaultOutputBytes    int   `json:"default_output_bytes"`
	DefaultTimeoutMS      int   `json:"default_timeout_ms"`
	MaxArtifactBytes      int64 `json:"max_artifact_bytes"`
	MaxAssetBytes         int64 `json:"max_asset_bytes"`
	MaxConcurrentRuns     int   `json:"max_concurrent_runs"`
	MaxFSBytes            int64 `json:"max_fs_bytes"`
	MaxInputBytes         int64 `json:"max_input_bytes"`
	MaxMemoryMB           int   `json:"max_memory_mb"`
	MaxModuleBytes        int64 `json:"max_module_bytes"`
	MaxModuleStorageBytes int64 `json:"max_module_storage_bytes"`
	MaxModules            int   `json:"max_modules"`
	MaxOutputBytes        int   `json:"max_output_bytes"`
	MaxTimeoutMS          int   `json:"max_timeout_ms"`
	ReadsPerMinute        int   `json:"reads_per_minute"`
	RunsPerDay            int   `json:"runs_per_day"`
	RunsPerMinute         int   `json:"runs_per_minute"`
	UploadsPerMinute      int   `json:"uploads_per_minute"`
}

func viewLimits(t store.Tier) limitsView {
	return limitsView{
		DefaultMemoryMB: t.DefaultMemoryMB, DefaultOutputBytes: t.DefaultOutputBytes, DefaultTimeoutMS: t.DefaultTimeoutMS,
		MaxArtifactBytes: t.MaxArtifactBytes, MaxAssetBytes: t.MaxAssetBytes, MaxConcurrentRuns: t.MaxConcurrentRuns,
		MaxFSBytes: t.MaxFSBytes, MaxInputBytes: t.MaxInputBytes, MaxMemoryMB: t.MaxMemoryMB,
		MaxModuleBytes: t.MaxModuleBytes, MaxModuleStorageBytes: t.MaxModuleStorageBytes, MaxModules: t.MaxModules,
		MaxOutputBytes: t.MaxOutputBytes, MaxTimeoutMS: t.MaxTimeoutMS, ReadsPerMinute: t.ReadsPerMinute,
		RunsPerDay: t.RunsPerDay, RunsPerMinute: t.RunsPerMinute, UploadsPerMinute: t.UploadsPerMinute,
	}
}

// usageView is an account's activity today (UTC) and now (the SDK reads it
// with the same type).
type usageView = apiobject.AccountUsage

func viewUsage(u store.Usage) usageView {
	return usageView{RunsToday: int64(u.RunsToday), Running: int64(u.Running), Queued: int64(u.Queued),
		Modules: int64(u.Modules), ModuleBytes: u.ModuleBytes}
}

// secretView is POST /v1/account/webhook-secret/rotate: the new secret,
// and until when the old one still signs (RFC 3339).
type secretView struct {
	PreviousSecretExpires string `json:"previous_secret_expires"`
	WebhookSecret         string `json:"webhook_secret"`
}

// getAccount is GET /v1/account: the caller's account, its tier's limits and
// today's usage.
func (s *Server) getAccount(c echo.Context) error {
	p := principal(c)
	ctx := c.Request().Context()
	a, err := s.store.GetAccount(ctx, p.AccountID)
	if err != nil {
		return err
	}
	usage, err := s.store.AccountUsage(ctx, p.AccountID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewAccountDetail(a, p.Tier, usage))
}

// secretOverlap is how long a rotated-out webhook secret keeps signing.
const secretOverlap = 24 * time.Hour

// rotateWebhookSecret is POST /v1/account/webhook-secret/rotate: a new
// secret at once; the old one signs too (a second signature) for 24 h.
func (s *Server) rotateWebhookSecret(c echo.Context) error {
	p := principal(c)
	secret, err := s.store.RotateWebhookSecret(c.Request().Context(), actorOf(c), p.AccountID, secretOverlap)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, secretView{WebhookSecret: secret,
		PreviousSecretExpires: time.Now().Add(secretOverlap).UTC().Format(time.RFC3339)})
}

func (s *Server) adminCreateAccount(c echo.Context) error {
	var req struct {
		Name string `json:"name"`
		Tier string `json:"tier"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	req.Name = strings.TrimSpace(req.Name)
	var errs []apperr.FieldError
	if req.Name == "" || len(req.Name) > 200 || !store.ValidText(req.Name) {
		errs = append(errs, apperr.FieldError{Field: "name", Message: "is required, UTF-8 without NUL, at most 200 bytes"})
	}
	if req.Tier == "" {
		req.Tier = "free"
	}
	if !tierName.MatchString(req.Tier) {
		errs = append(errs, apperr.FieldError{Field: "tier", Message: fmt.Sprintf("tier %q does not exist", printable(req.Tier))})
	}
	if len(errs) > 0 {
		return apperr.Validation(errs...)
	}
	a, err := s.store.CreateAccount(c.Request().Context(), actorOf(c), req.Name, req.Tier)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, viewAccount(a))
}

func (s *Server) adminListAccounts(c echo.Context) error {
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	page, err := s.store.ListAccountsPage(c.Request().Context(), c.QueryParam("cursor"), limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewPage(page, viewAccountNoSecret))
}

func (s *Server) adminUpdateAccount(c echo.Context) error {
	id, err := pathID(c, "account")
	if err != nil {
		return err
	}
	var req struct {
		Tier string `json:"tier"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Tier) == "" {
		return apperr.Validation(apperr.FieldError{Field: "tier", Message: "is required"})
	}
	if !tierName.MatchString(req.Tier) {
		return apperr.Validation(apperr.FieldError{Field: "tier", Message: fmt.Sprintf("tier %q does not exist", printable(req.Tier))})
	}
	a, err := s.store.UpdateAccountTier(c.Request().Context(), actorOf(c), id, req.Tier)
	if err != nil {
		return err
	}
	s.forgetKeys()
	return c.JSON(http.StatusOK, viewAccountNoSecret(a))
}
