package httpapi

import (
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

var tierName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

// tierView is a tier of the admin API: its name and every limit it grants.
type tierView struct {
	Name                  string    `json:"name"`
	RunsPerMinute         int       `json:"runs_per_minute"`
	RunsPerDay            int       `json:"runs_per_day"`
	MaxConcurrentRuns     int       `json:"max_concurrent_runs"`
	DefaultTimeoutMS      int       `json:"default_timeout_ms"`
	MaxTimeoutMS          int       `json:"max_timeout_ms"`
	DefaultMemoryMB       int       `json:"default_memory_mb"`
	MaxMemoryMB           int       `json:"max_memory_mb"`
	DefaultOutputBytes    int       `json:"default_output_bytes"`
	MaxOutputBytes        int       `json:"max_output_bytes"`
	MaxModuleBytes        int64     `json:"max_module_bytes"`
	QueueWeight           int       `json:"queue_weight"`
	ReadsPerMinute        int       `json:"reads_per_minute"`
	CreatedAt             time.Time `json:"created_at"`
	UpdatedAt             time.Time `json:"updated_at"`
	UploadsPerMinute      int       `json:"uploads_per_minute"`
	MaxModules            int       `json:"max_modules"`
	MaxModuleStorageBytes int64     `json:"max_module_storage_bytes"`
	MaxInputBytes         int64     `json:"max_input_bytes"`
	MaxFSBytes            int64     `json:"max_fs_bytes"`
	MaxArtifactBytes      int64     `json:"max_artifact_bytes"`
	MaxAssetBytes         int64     `json:"max_asset_bytes"`
}

func viewTier(t store.Tier) tierView {
	return tierView{
		Name: t.Name, RunsPerMinute: t.RunsPerMinute, RunsPerDay: t.RunsPerDay, MaxConcurrentRuns: t.MaxConcurrentRuns,
		DefaultTimeoutMS: t.DefaultTimeoutMS, MaxTimeoutMS: t.MaxTimeoutMS,
		DefaultMemoryMB: t.DefaultMemoryMB, MaxMemoryMB: t.MaxMemoryMB,
		DefaultOutputBytes: t.DefaultOutputBytes, MaxOutputBytes: t.MaxOutputBytes,
		MaxModuleBytes: t.MaxModuleBytes, QueueWeight: t.QueueWeight, ReadsPerMinute: t.ReadsPerMinute,
		CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt,
		UploadsPerMinute: t.UploadsPerMinute, MaxModules: t.MaxModules, MaxModuleStorageBytes: t.MaxModuleStorageBytes,
		MaxInputBytes: t.MaxInputBytes, MaxFSBytes: t.MaxFSBytes, MaxArtifactBytes: t.MaxArtifactBytes,
		MaxAssetBytes: t.MaxAssetBytes,
	}
}

// tierFields is the admin's view of a tier's settable fields; pointers tell
// a PATCH which fields were sent.
type tierFields struct {
	Name               *string `json:"name"`
	RunsPerMinute      *int    `json:"runs_per_minute"`
	RunsPerDay         *int    `json:"runs_per_day"`
	MaxConcurrentRuns  *int    `json:"max_concurrent_runs"`
	DefaultTimeoutMS   *int    `json:"default_timeout_ms"`
	MaxTimeoutMS       *int    `json:"max_timeout_ms"`
	DefaultMemoryMB    *int    `json:"default_memory_mb"`
	MaxMemoryMB        *int    `json:"max_memory_mb"`
	DefaultOutputBytes *int    `json:"default_output_bytes"`
	MaxOutputBytes     *int    `json:"max_output_bytes"`
	MaxModuleBytes     *int64  `json:"max_module_bytes"`
	QueueWeight        *int    `json:"queue_weight"`
	ReadsPerMinute     *int    `json:"reads_per_minute"`
	// The upload limits are optional on create: a new tier gets the free
	// tier's defaults.
	UploadsPerMinute      *int   `json:"uploads_per_minute"`
	MaxModules            *int   `json:"max_modules"`
	MaxModuleStorageBytes *int64 `json:"max_module_storage_bytes"`
	// The file limits are optional on create too (the free tier's).
	MaxInputBytes    *int64 `json:"max_input_bytes"`
	MaxFSBytes       *int64 `json:"max_fs_bytes"`
	MaxArtifactBytes *int64 `json:"max_artifact_bytes"`
	MaxAssetBytes    *int64 `json:"max_asset_bytes"`
}

// Upload limits of a new tier that does not set them (the free tier's).
const (
	defaultUploadsPerMinute      = 10
	defaultMaxModules            = 100
	defaultMaxModuleStorageBytes = 256 << 20
)

// File limits of a new tier that does not set them (the free tier's), and
// the most a tier may grant: a job's files are held in a worker's memory.
const (
	defaultMaxInputBytes    = 1 << 20
	defaultMaxFSBytes       = 16 << 20
	defaultMaxArtifactBytes = 4 << 20
	defaultMaxAssetBytes    = 64 << 20
	maxFileLimit            = 4 << 30
)

// apply copies the sent fields over t; with required, every field must be sent.
func (f tierFields) apply(t *store.Tier, required bool) []apperr.FieldError {
	var errs []apperr.FieldError
	intField := func(name string, v *int, dst *int) {
		if v == nil {
			if required {
				errs = append(errs, apperr.FieldError{Field: name, Message: "is required"})
			}
			return
		}
		*dst = *v
	}
	intField("runs_per_minute", f.RunsPerMinute, &t.RunsPerMinute)
	intField("runs_per_day", f.RunsPerDay, &t.RunsPerDay)
	intField("max_concurrent_runs", f.MaxConcurrentRuns, &t.MaxConcurrentRuns)
	intField("default_timeout_ms", f.DefaultTimeoutMS, &t.DefaultTimeoutMS)
	intField("max_timeout_ms", f.MaxTimeoutMS, &t.MaxTimeoutMS)
	intField("default_memory_mb", f.DefaultMemoryMB, &t.DefaultMemoryMB)
	intField("max_memory_mb", f.MaxMemoryMB, &t.MaxMemoryMB)
	intField("queue_weight", f.QueueWeight, &t.QueueWeight)
	intField("reads_per_minute", f.ReadsPerMinute, &t.ReadsPerMinute)
	// Output limits default to 1 MiB when a new tier does not set them.
	if f.DefaultOutputBytes != nil {
		t.DefaultOutputBytes = *f.DefaultOutputBytes
	} else if required {
		t.DefaultOutputBytes = 1 << 20
	}
	if f.MaxOutputBytes != nil {
		t.MaxOutputBytes = *f.MaxOutputBytes
	} else if required {
		t.MaxOutputBytes = max(1<<20, t.DefaultOutputBytes)
	}
	optional := func(v *int, dst *int, def int) {
		if v != nil {
			*dst = *v
		} else if required {
			*dst = def
		}
	}
	optional(f.UploadsPerMinute, &t.UploadsPerMinute, defaultUploadsPerMinute)
	optional(f.MaxModules, &t.MaxModules, defaultMaxModules)
	if f.MaxModuleStorageBytes != nil {
		t.MaxModuleStorageBytes = *f.MaxModuleStorageBytes
	} else if required {
		t.MaxModuleStorageBytes = defaultMaxModuleStorageBytes
	}
	optional64 := func(v *int64, dst *int64, def int64) {
		if v != nil {
			*dst = *v
		} else if required {
			*dst = def
		}
	}
	optional64(f.MaxInputBytes, &t.MaxInputBytes, defaultMaxInputBytes)
	optional64(f.MaxFSBytes, &t.MaxFSBytes, defaultMaxFSBytes)
	optional64(f.MaxArtifactBytes, &t.MaxArtifactBytes, defaultMaxArtifactBytes)
	optional64(f.MaxAssetBytes, &t.MaxAssetBytes, defaultMaxAssetBytes)
	if f.MaxModuleBytes != nil {
		t.MaxModuleBytes = *f.MaxModuleBytes
	} else if required {
		errs = append(errs, apperr.FieldError{Field: "max_module_bytes", Message: "is required"})
	}
	return errs
}

// applyValid is apply then, when every field was there, validateTier: the
// validation error of what is wrong, or nil.
func (f tierFields) applyValid(t *store.Tier, required bool) error {
	errs := f.apply(t, required)
	if len(errs) == 0 {
		errs = validateTier(*t)
	}
	if len(errs) > 0 {
		return apperr.Validation(errs...)
	}
	return nil
}

// validateTier checks a tier's limits against each other and against what
// the platform can run.
func validateTier(t store.Tier) []apperr.FieldError {
	var errs []apperr.FieldError
	check := func(ok bool, field, msg string) {
		if !ok {
			errs = append(errs, apperr.FieldError{Field: field, Message: msg})
		}
	}
	check(tierName.MatchString(t.Name), "name", "must be 1 to 32 of a-z, 0-9, _ and -, starting with a letter")
	check(t.RunsPerMinute >= 0, "runs_per_minute", "must be 0 or more")
	check(t.RunsPerDay >= 0, "runs_per_day", "must be 0 or more")
	check(t.MaxConcurrentRuns >= 0, "max_concurrent_runs", "must be 0 or more")
	check(t.DefaultTimeoutMS >= 1, "default_timeout_ms", "must be at least 1")
	check(t.MaxTimeoutMS >= t.DefaultTimeoutMS && t.MaxTimeoutMS <= store.MaxTimeoutMS, "max_timeout_ms",
		fmt.Sprintf("must be from default_timeout_ms to %d", store.MaxTimeoutMS))
	check(t.DefaultMemoryMB >= 1, "default_memory_mb", "must be at least 1")
	check(t.MaxMemoryMB >= t.DefaultMemoryMB && t.MaxMemoryMB <= 4096, "max_memory_mb", "must be from default_memory_mb to 4096 (a 32-bit guest's whole address space)")
	check(t.DefaultOutputBytes >= 1, "default_output_bytes", "must be at least 1")
	check(t.MaxOutputBytes >= t.DefaultOutputBytes && t.MaxOutputBytes <= 32<<20, "max_output_bytes", "must be from default_output_bytes to 33554432")
	check(t.MaxModuleBytes >= 8 && t.MaxModuleBytes <= 1<<30, "max_module_bytes", "must be from 8 to 1073741824")
	check(t.QueueWeight >= 1 && t.QueueWeight <= 100, "queue_weight", "must be from 1 to 100")
	check(t.ReadsPerMinute >= 0, "reads_per_minute", "must be 0 or more")
	check(t.UploadsPerMinute >= 0, "uploads_per_minute", "must be 0 or more")
	check(t.MaxModules >= 0, "max_modules", "must be 0 or more")
	check(t.MaxModuleStorageBytes >= 0, "max_module_storage_bytes", "must be 0 or more")
	fileLimit := func(v int64, field string) {
		check(v >= 0 && v <= maxFileLimit, field, fmt.Sprintf("must be from 0 to %d", int64(maxFileLimit)))
	}
	fileLimit(t.MaxInputBytes, "max_input_bytes")
	fileLimit(t.MaxFSBytes, "max_fs_bytes")
	fileLimit(t.MaxArtifactBytes, "max_artifact_bytes")
	fileLimit(t.MaxAssetBytes, "max_asset_bytes")
	return errs
}

func (s *Server) adminListTiers(c echo.Context) error {
	ts, err := s.store.ListTiers(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, dataView[tierView]{Data: viewAll(ts, viewTier)})
}

func (s *Server) adminCreateTier(c echo.Context) error {
	var f tierFields
	if err := decodeJSON(c, &f); err != nil {
		return err
	}
	var t store.Tier
	if f.Name != nil {
		t.Name = *f.Name
	}
	if err := f.applyValid(&t, true); err != nil {
		return err
	}
	out, err := s.store.CreateTier(c.Request().Context(), actorOf(c), t)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, viewTier(out))
}

func (s *Server) adminUpdateTier(c echo.Context) error {
	var f tierFields
	if err := decodeJSON(c, &f); err != nil {
		return err
	}
	name := c.Param("name")
	if !tierName.MatchString(name) {
		return apperr.New(apperr.NotFound, "tier %q not found", name)
	}
	if f.Name != nil && *f.Name != name {
		return apperr.Validation(apperr.FieldError{Field: "name", Message: "a tier cannot be renamed"})
	}
	ctx := c.Request().Context()
	t, err := s.store.GetTier(ctx, name)
	if err != nil {
		return err
	}
	if err := f.applyValid(&t, false); err != nil {
		return err
	}
	out, err := s.store.UpdateTier(ctx, actorOf(c), name, t)
	if err != nil {
		return err
	}
	s.forgetKeys()
	return c.JSON(http.StatusOK, viewTier(out))
}
