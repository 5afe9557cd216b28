package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/shared/jobview"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

// executeMargin is how much longer than the job's own timeout POST
// /api/execute waits for it: time in the queue and in the worker around the
// guest's run.
const executeMargin = 30 * time.Second

// executeResponse is the original Wasm Wizard's answer.
type executeResponse struct {
	Output *string `json:"output"`
	Error  *string `json:"error"`
}

// execute is the original Wasm Wizard's synchronous call: a multipart form
// with the module bytes ("wasm") and optional stdin ("input"). The module is
// stored like an upload (or the account's existing copy reused), a job with
// the tier's default limits goes through the same queue as any other, and
// the answer waits for it. 200 {"output": stdout, "error": null} when the
// job succeeded; 200 with "error" set (and whatever output there was) when
// the guest failed, trapped or timed out; 504 if it has not finished within
// its timeout plus executeMargin (it still runs; Location names it). Request
// errors answer the same shape with their status (400, 413, 415, 503).
func (s *Server) execute(c echo.Context) error {
	job, err := s.executeJob(c)
	if err != nil {
		return s.executeFailed(c, err)
	}
	c.Response().Header().Set(echo.HeaderLocation, "/v1/jobs/"+job.ID.String())
	status := http.StatusOK
	var errMsg *string
	switch {
	case job.Status == jobstate.Succeeded:
	case job.Status.Terminal():
		msg := string(job.Status)
		if job.ErrorCode != nil {
			msg = *job.ErrorCode
		}
		if job.ErrorMessage != nil && *job.ErrorMessage != "" {
			msg += ": " + *job.ErrorMessage
		}
		errMsg = &msg
	default:
		msg := fmt.Sprintf("the job did not finish in time; it is still %s as job %s", job.Status, job.ID)
		errMsg = &msg
		status = http.StatusGatewayTimeout
	}
	if !job.Status.Terminal() {
		return c.JSON(status, executeResponse{Error: errMsg})
	}
	// The output is written like a Job's (see writeJob).
	ctx := c.Request().Context()
	release, err := s.reserveOutput(ctx, job)
	if err != nil {
		return s.executeFailed(c, err)
	}
	defer release()
	tail, err := json.Marshal(errMsg)
	if err != nil {
		return err
	}
	w := s.answerWriter(c, status)
	stdout, _ := s.outputs(ctx, job)
	if _, err := io.WriteString(w, `{"output":`); err != nil {
		return s.abortOnError(c, err)
	}
	if err := jobview.WriteString(w, stdout, make([]byte, min(outputPiece, max(stdout.Size(), 4)))); err != nil {
		return s.abortOnError(c, err)
	}
	_, err = fmt.Fprintf(w, ",\"error\":%s}\n", tail)
	return s.abortOnError(c, err)
}

// executeFailed answers a request error in /api/execute's shape.
func (s *Server) executeFailed(c echo.Context, err error) error {
	p := problemFor(err, requestID(c))
	if p.Status >= 500 {
		s.log.Error("execute failed", zap.String("request_id", p.RequestID), zap.Error(err))
	}
	if p.Code == apperr.Unavailable {
		c.Response().Header().Set("Retry-After", "1")
	}
	msg := p.Detail
	return c.JSON(p.Status, executeResponse{Error: &msg})
}

func (s *Server) executeJob(c echo.Context) (store.Job, error) {
	r := c.Request()
	p := principal(c)
	mediaType, params, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	if err != nil || mediaType != "multipart/form-data" {
		return store.Job{}, apperr.New(apperr.UnsupportedMediaType,
			"send multipart/form-data with the module as the 'wasm' part and stdin as the optional 'input' part")
	}
	// The module is uploaded like any other: it counts against the tier's
	// upload limits.
	if err := s.admitUpload(r.Context(), c.Response().Header(), p); err != nil {
		return store.Job{}, err
	}
	// The module, the input, and a little room for the form's framing.
	if err := capModuleBody(r, p.Tier.MaxModuleBytes, maxStdinBytes+formRoom); err != nil {
		return store.Job{}, err
	}
	content, texts, err := readModuleForm(multipart.NewReader(r.Body, params["boundary"]), "wasm", p.Tier.MaxModuleBytes,
		map[string]int64{"input": maxStdinBytes})
	if err != nil {
		return store.Job{}, err
	}
	input := texts["input"]
	if len(input) > maxStdinBytes {
		return store.Job{}, apperr.Validation(apperr.FieldError{Field: "input", Message: fmt.Sprintf("is larger than %d bytes", maxStdinBytes)})
	}
	ctx := r.Context()
	m, _, err := s.ingestModule(ctx, actorOf(c), p, "", content)
	if err != nil {
		return store.Job{}, err
	}
	stdin := string(input)
	j, err := s.buildJob(ctx, p, jobRequest{ModuleID: m.ID.String(), Stdin: &stdin})
	if err != nil {
		return store.Job{}, err
	}
	j.Watched = true // answered when it ends
	if err := s.admitRuns(ctx, c.Response().Header(), p, 1); err != nil {
		return store.Job{}, err
	}
	job, _, err := s.submit(ctx, actorOf(c), j, "", nil)
	if err != nil {
		return store.Job{}, err
	}
	wait := time.Duration(job.TimeoutMS)*time.Millisecond + executeMargin
	return s.awaitJob(ctx, job.AccountID, job.ID, wait)
}
