package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

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
	t := p.Tier
	return c.JSON(http.StatusOK, map[string]any{
		"id": a.ID, "name": a.Name, "tier": a.Tier, "webhook_secret": a.WebhookSecret, "created_at": a.CreatedAt,
		"limits": map[string]any{
			"runs_per_minute": t.RunsPerMinute, "runs_per_day": t.RunsPerDay, "max_concurrent_runs": t.MaxConcurrentRuns,
			"default_timeout_ms": t.DefaultTimeoutMS, "max_timeout_ms": t.MaxTimeoutMS,
			"default_memory_mb": t.DefaultMemoryMB, "max_memory_mb": t.MaxMemoryMB,
			"default_output_bytes": t.DefaultOutputBytes, "max_output_bytes": t.MaxOutputBytes,
			"max_module_bytes": t.MaxModuleBytes, "reads_per_minute": t.ReadsPerMinute,
			"uploads_per_minute": t.UploadsPerMinute, "max_modules": t.MaxModules,
			"max_module_storage_bytes": t.MaxModuleStorageBytes,
			"max_input_bytes":          t.MaxInputBytes, "max_fs_bytes": t.MaxFSBytes,
			"max_artifact_bytes": t.MaxArtifactBytes, "max_asset_bytes": t.MaxAssetBytes,
		},
		"usage": usage,
	})
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
	return c.JSON(http.StatusOK, map[string]any{
		"webhook_secret":          secret,
		"previous_secret_expires": time.Now().Add(secretOverlap).UTC().Format(time.RFC3339),
	})
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
	return c.JSON(http.StatusOK, viewPage(page, func(a store.Account) accountView {
		v := viewAccount(a)
		v.WebhookSecret = "" // shown at creation and to the account itself only
		return v
	}))
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
	v := viewAccount(a)
	v.WebhookSecret = ""
	return c.JSON(http.StatusOK, v)
}
