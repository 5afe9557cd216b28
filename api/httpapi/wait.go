package httpapi

import (
	"context"
	"math"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

// maxWait bounds ?wait=.
const maxWait = 60 * time.Second

// parseWait reads ?wait=: a Go duration ("500ms", "5s") or a number of
// seconds ("5", "2.5"), from 0 to 60 s. Empty means do not wait.
func parseWait(raw string) (time.Duration, error) {
	if raw == "" {
		return 0, nil
	}
	bad := apperr.Validation(apperr.FieldError{Field: "wait",
		Message: "must be a duration such as 500ms or 30s, or a number of seconds, from 0 to 60 s"})
	d, err := time.ParseDuration(raw)
	if err != nil {
		f, ferr := strconv.ParseFloat(raw, 64)
		if ferr != nil || math.IsNaN(f) || f < 0 || f > maxWait.Seconds() {
			return 0, bad
		}
		d = time.Duration(f * float64(time.Second))
	}
	if d < 0 || d > maxWait {
		return 0, bad
	}
	return d, nil
}

// awaitJob returns the account's job (read with store.GetJobView) once it is terminal, or as it is when
// wait ends (or the server shuts down). It never polls: it registers a watch
// before each read, so that a job finishing right after the read still fires
// the watch, and reads again only when the watch fires. Only watched jobs
// notify (store.WatchJob): a job submitted with ?wait= is watched from its
// insert; any other is marked before it is read again.
func (s *Server) awaitJob(ctx context.Context, accountID, id uuid.UUID, wait time.Duration) (store.Job, error) {
	if wait <= 0 || s.watcher == nil {
		return s.store.GetJobView(ctx, accountID, id)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		w := s.watcher.Watch(id)
		j, err := s.store.GetJobView(ctx, accountID, id)
		if err == nil && !j.Status.Terminal() && !j.Watched && !s.watcher.Closed() {
			// Only watched jobs notify: ask for it, then read again (a
			// finish that committed before the flag is seen by this read).
			if err = s.store.WatchJob(ctx, accountID, id); err == nil {
				j, err = s.store.GetJobView(ctx, accountID, id)
			}
		}
		if err != nil || j.Status.Terminal() || s.watcher.Closed() {
			w.Stop()
			return j, err
		}
		select {
		case <-w.C():
		case <-timer.C:
			w.Stop()
			return s.store.GetJobView(ctx, accountID, id)
		case <-ctx.Done():
			w.Stop()
			// The client went away; what is answered does not matter.
			return j, nil
		}
	}
}
