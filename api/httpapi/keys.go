package httpapi

import (
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

// API keys: the caller's account's keys (GET /v1/account/keys) and the
// admin's routes that mint, list and revoke them.

type keyView struct {
	ID        uuid.UUID `json:"id"`
	AccountID uuid.UUID `json:"account_id"`
	Name      string    `json:"name"`
	Key       string    `json:"key,omitempty"`
	Prefix    string    `json:"prefix"`
	CreatedAt time.Time `json:"created_at"`
}

type keyListView struct {
	ID         uuid.UUID  `json:"id"`
	AccountID  uuid.UUID  `json:"account_id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

func viewKey(k store.APIKey) keyListView {
	return keyListView{ID: k.ID, AccountID: k.AccountID, Name: k.Name, Prefix: k.Prefix, CreatedAt: k.CreatedAt,
		LastUsedAt: k.LastUsedAt, RevokedAt: k.RevokedAt}
}

// listAccountKeys is GET /v1/account/keys: the caller's account's keys
// (never their secrets), with when each was last used.
func (s *Server) listAccountKeys(c echo.Context) error {
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	page, err := s.store.ListKeys(c.Request().Context(), principal(c).AccountID, c.QueryParam("cursor"), limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewPage(page, viewKey))
}

func (s *Server) adminCreateKey(c echo.Context) error {
	id, err := pathID(c, "account")
	if err != nil {
		return err
	}
	var req struct {
		Name string `json:"name"`
	}
	if c.Request().ContentLength != 0 {
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
	}
	if len(req.Name) > 200 || !store.ValidText(req.Name) {
		return apperr.Validation(apperr.FieldError{Field: "name", Message: "must be UTF-8 without NUL, at most 200 bytes"})
	}
	k, plain, err := s.store.CreateKey(c.Request().Context(), actorOf(c), id, req.Name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, keyView{ID: k.ID, AccountID: k.AccountID, Name: k.Name, Key: plain,
		Prefix: k.Prefix, CreatedAt: k.CreatedAt})
}

func (s *Server) adminListKeys(c echo.Context) error {
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	var account uuid.UUID
	if v := c.QueryParam("account_id"); v != "" {
		if account, err = uuid.Parse(v); err != nil {
			return apperr.Validation(apperr.FieldError{Field: "account_id", Message: "is not an account ID"})
		}
	}
	page, err := s.store.ListKeys(c.Request().Context(), account, c.QueryParam("cursor"), limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewPage(page, viewKey))
}

func (s *Server) adminRevokeKey(c echo.Context) error {
	id, err := pathID(c, "key")
	if err != nil {
		return err
	}
	if _, err := s.store.RevokeKey(c.Request().Context(), actorOf(c), id); err != nil {
		return err
	}
	s.forgetKeys()
	return c.NoContent(http.StatusNoContent)
}
