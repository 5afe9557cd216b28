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

type keyView struct {
	ID        uuid.UUID `json:"id"`
	AccountID uuid.UUID `json:"account_id"`
	Name      string    `json:"name"`
	Key       string    `json:"key,omitempty"`
	Prefix    string    `json:"prefix"`
	CreatedAt time.Time `json:"created_at"`
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

// adminQueues reports each queue's depth by state. asynq's queue
// inspection is O(groups) in Redis: fine for an operator's request, not for
// a probe.
func (s *Server) adminQueues(c echo.Context) error {
	names, err := s.inspectorQueues()
	if err != nil {
		return apperr.Wrap(err, apperr.Unavailable, "the queue is unavailable")
	}
	out := []map[string]any{}
	for _, q := range names {
		info, err := s.queueInspector.GetQueueInfo(q)
		if err != nil {
			continue
		}
		out = append(out, map[string]any{"name": q, "pending": info.Pending, "active": info.Active,
			"scheduled": info.Scheduled, "retry": info.Retry, "archived": info.Archived, "completed": info.Completed,
			"latency_ms": info.Latency.Milliseconds(), "paused": info.Paused})
	}
	return c.JSON(http.StatusOK, map[string]any{"data": out})
}

func (s *Server) inspectorQueues() ([]string, error) {
	all, err := s.queueInspector.Queues()
	if err != nil {
		return nil, err
	}
	// Only this deployment's queues: its base queue, its tier queues and
	// its webhook queue.
	var mine []string
	for _, q := range all {
		if q == s.queue || strings.HasPrefix(q, s.queue+":") || q == s.webhookQueue {
			mine = append(mine, q)
		}
	}
	return mine, nil
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

func (s *Server) adminListTiers(c echo.Context) error {
	ts, err := s.store.ListTiers(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": ts})
}
