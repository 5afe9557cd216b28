package httpapi

import (
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

type auditView struct {
	ID          int64          `json:"id"`
	AccountID   *uuid.UUID     `json:"account_id"`
	Actor       string         `json:"actor"`
	Action      string         `json:"action"`
	SubjectType string         `json:"subject_type"`
	SubjectID   string         `json:"subject_id"`
	JobID       *uuid.UUID     `json:"job_id"`
	RequestID   string         `json:"request_id"`
	Data        map[string]any `json:"data"`
	CreatedAt   time.Time      `json:"created_at"`
}

func viewAudit(e store.Event) auditView {
	return auditView{ID: e.ID, AccountID: e.AccountID, Actor: e.ActorName, Action: e.Action, SubjectType: e.SubjectType,
		SubjectID: e.SubjectID, JobID: e.JobID, RequestID: e.RequestID, Data: e.Data, CreatedAt: e.CreatedAt}
}

func (s *Server) adminAudit(c echo.Context) error {
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	var f store.AuditFilter
	var errs []apperr.FieldError
	parseID := func(name string, dst *uuid.UUID) {
		if v := c.QueryParam(name); v != "" {
			id, err := uuid.Parse(v)
			if err != nil {
				errs = append(errs, apperr.FieldError{Field: name, Message: "is not an ID"})
			}
			*dst = id
		}
	}
	parseID("account_id", &f.AccountID)
	parseID("job_id", &f.JobID)
	f.Action = c.QueryParam("action")
	errs = append(errs, createdRange(c, &f.CreatedAfter, &f.CreatedBefore)...)
	if len(errs) > 0 {
		return apperr.Validation(errs...)
	}
	page, err := s.store.ListAudit(c.Request().Context(), f, c.QueryParam("cursor"), limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewPage(page, viewAudit))
}
