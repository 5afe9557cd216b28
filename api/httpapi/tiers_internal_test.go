package httpapi

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

// validTier passes validateTier; each case of the tests below changes it.
func validTier() store.Tier {
	return store.Tier{Name: "free", RunsPerMinute: 10, RunsPerDay: 500, MaxConcurrentRuns: 5,
		DefaultTimeoutMS: 5000, MaxTimeoutMS: 60_000, DefaultMemoryMB: 128, MaxMemoryMB: 256,
		DefaultOutputBytes: 1 << 20, MaxOutputBytes: 4 << 20, MaxModuleBytes: 10 << 20, QueueWeight: 1,
		ReadsPerMinute: 600, UploadsPerMinute: 10, MaxModules: 100, MaxModuleStorageBytes: 256 << 20,
		MaxInputBytes: 1 << 20, MaxFSBytes: 16 << 20, MaxArtifactBytes: 4 << 20, MaxAssetBytes: 64 << 20}
}

func fieldErr(field, msg string) []apperr.FieldError {
	return []apperr.FieldError{{Field: field, Message: msg}}
}

// Every rule of validateTier, at its edges: each invalid field is named
// with the rule it breaks, and a valid tier has no errors.
func TestValidateTier(t *testing.T) {
	t.Parallel()
	const (
		nameMsg       = "must be 1 to 32 of a-z, 0-9, _ and -, starting with a letter"
		zeroOrMore    = "must be 0 or more"
		atLeastOne    = "must be at least 1"
		timeoutMsg    = "must be from default_timeout_ms to 3600000"
		memoryMsg     = "must be from default_memory_mb to 4096 (a 32-bit guest's whole address space)"
		outputMsg     = "must be from default_output_bytes to 33554432"
		moduleMsg     = "must be from 8 to 1073741824"
		weightMsg     = "must be from 1 to 100"
		fileLimitsMsg = "must be from 0 to 4294967296"
	)
	tests := []struct {
		name string
		set  func(*store.Tier)
		want []apperr.FieldError
	}{
		{name: "valid", set: func(*store.Tier) {}},

		{name: "name of one letter", set: func(t *store.Tier) { t.Name = "a" }},
		{name: "name of 32 characters", set: func(t *store.Tier) { t.Name = "a" + strings.Repeat("-_9", 10) + "z" }},
		{name: "empty name", set: func(t *store.Tier) { t.Name = "" }, want: fieldErr("name", nameMsg)},
		{name: "name of 33 characters", set: func(t *store.Tier) { t.Name = strings.Repeat("a", 33) }, want: fieldErr("name", nameMsg)},
		{name: "name starting with a digit", set: func(t *store.Tier) { t.Name = "1a" }, want: fieldErr("name", nameMsg)},
		{name: "name starting with a dash", set: func(t *store.Tier) { t.Name = "-a" }, want: fieldErr("name", nameMsg)},
		{name: "upper-case name", set: func(t *store.Tier) { t.Name = "Free" }, want: fieldErr("name", nameMsg)},
		{name: "name with a dot", set: func(t *store.Tier) { t.Name = "a.b" }, want: fieldErr("name", nameMsg)},
		{name: "name with a line break", set: func(t *store.Tier) { t.Name = "a\n" }, want: fieldErr("name", nameMsg)},

		// 0 is unlimited for the counted limits.
		{name: "unlimited counts", set: func(t *store.Tier) {
			t.RunsPerMinute, t.RunsPerDay, t.MaxConcurrentRuns, t.ReadsPerMinute = 0, 0, 0, 0
			t.UploadsPerMinute, t.MaxModules, t.MaxModuleStorageBytes = 0, 0, 0
		}},
		{name: "negative runs_per_minute", set: func(t *store.Tier) { t.RunsPerMinute = -1 }, want: fieldErr("runs_per_minute", zeroOrMore)},
		{name: "negative runs_per_day", set: func(t *store.Tier) { t.RunsPerDay = -1 }, want: fieldErr("runs_per_day", zeroOrMore)},
		{name: "negative max_concurrent_runs", set: func(t *store.Tier) { t.MaxConcurrentRuns = -1 }, want: fieldErr("max_concurrent_runs", zeroOrMore)},
		{name: "negative reads_per_minute", set: func(t *store.Tier) { t.ReadsPerMinute = -1 }, want: fieldErr("reads_per_minute", zeroOrMore)},
		{name: "negative uploads_per_minute", set: func(t *store.Tier) { t.UploadsPerMinute = -1 }, want: fieldErr("uploads_per_minute", zeroOrMore)},
		{name: "negative max_modules", set: func(t *store.Tier) { t.MaxModules = -1 }, want: fieldErr("max_modules", zeroOrMore)},
		{name: "negative max_module_storage_bytes", set: func(t *store.Tier) { t.MaxModuleStorageBytes = -1 }, want: fieldErr("max_module_storage_bytes", zeroOrMore)},

		{name: "smallest timeouts", set: func(t *store.Tier) { t.DefaultTimeoutMS, t.MaxTimeoutMS = 1, 1 }},
		{name: "largest timeout", set: func(t *store.Tier) { t.MaxTimeoutMS = store.MaxTimeoutMS }},
		{name: "zero default_timeout_ms", set: func(t *store.Tier) { t.DefaultTimeoutMS = 0 }, want: fieldErr("default_timeout_ms", atLeastOne)},
		{name: "max_timeout_ms under the default", set: func(t *store.Tier) { t.MaxTimeoutMS = t.DefaultTimeoutMS - 1 }, want: fieldErr("max_timeout_ms", timeoutMsg)},
		{name: "max_timeout_ms over an hour", set: func(t *store.Tier) { t.MaxTimeoutMS = store.MaxTimeoutMS + 1 }, want: fieldErr("max_timeout_ms", timeoutMsg)},
		{name: "default_timeout_ms over an hour", set: func(t *store.Tier) { t.DefaultTimeoutMS, t.MaxTimeoutMS = store.MaxTimeoutMS+1, store.MaxTimeoutMS+1 },
			want: fieldErr("max_timeout_ms", timeoutMsg)},

		{name: "smallest memory", set: func(t *store.Tier) { t.DefaultMemoryMB, t.MaxMemoryMB = 1, 1 }},
		{name: "largest memory", set: func(t *store.Tier) { t.DefaultMemoryMB, t.MaxMemoryMB = 4096, 4096 }},
		{name: "zero default_memory_mb", set: func(t *store.Tier) { t.DefaultMemoryMB = 0 }, want: fieldErr("default_memory_mb", atLeastOne)},
		{name: "max_memory_mb under the default", set: func(t *store.Tier) { t.MaxMemoryMB = t.DefaultMemoryMB - 1 }, want: fieldErr("max_memory_mb", memoryMsg)},
		{name: "max_memory_mb over 4 GiB", set: func(t *store.Tier) { t.MaxMemoryMB = 4097 }, want: fieldErr("max_memory_mb", memoryMsg)},

		{name: "smallest outputs", set: func(t *store.Tier) { t.DefaultOutputBytes, t.MaxOutputBytes = 1, 1 }},
		{name: "largest outputs", set: func(t *store.Tier) { t.DefaultOutputBytes, t.MaxOutputBytes = 32<<20, 32<<20 }},
		{name: "zero default_output_bytes", set: func(t *store.Tier) { t.DefaultOutputBytes = 0 }, want: fieldErr("default_output_bytes", atLeastOne)},
		{name: "max_output_bytes under the default", set: func(t *store.Tier) { t.MaxOutputBytes = t.DefaultOutputBytes - 1 }, want: fieldErr("max_output_bytes", outputMsg)},
		{name: "max_output_bytes over 32 MiB", set: func(t *store.Tier) { t.MaxOutputBytes = 32<<20 + 1 }, want: fieldErr("max_output_bytes", outputMsg)},

		{name: "smallest max_module_bytes", set: func(t *store.Tier) { t.MaxModuleBytes = 8 }},
		{name: "largest max_module_bytes", set: func(t *store.Tier) { t.MaxModuleBytes = 1 << 30 }},
		{name: "max_module_bytes under 8", set: func(t *store.Tier) { t.MaxModuleBytes = 7 }, want: fieldErr("max_module_bytes", moduleMsg)},
		{name: "max_module_bytes over 1 GiB", set: func(t *store.Tier) { t.MaxModuleBytes = 1<<30 + 1 }, want: fieldErr("max_module_bytes", moduleMsg)},

		{name: "largest queue_weight", set: func(t *store.Tier) { t.QueueWeight = 100 }},
		{name: "zero queue_weight", set: func(t *store.Tier) { t.QueueWeight = 0 }, want: fieldErr("queue_weight", weightMsg)},
		{name: "queue_weight over 100", set: func(t *store.Tier) { t.QueueWeight = 101 }, want: fieldErr("queue_weight", weightMsg)},

		{name: "no files", set: func(t *store.Tier) { t.MaxInputBytes, t.MaxFSBytes, t.MaxArtifactBytes, t.MaxAssetBytes = 0, 0, 0, 0 }},
		{name: "largest file limits", set: func(t *store.Tier) {
			t.MaxInputBytes, t.MaxFSBytes, t.MaxArtifactBytes, t.MaxAssetBytes = 4<<30, 4<<30, 4<<30, 4<<30
		}},
		{name: "negative max_input_bytes", set: func(t *store.Tier) { t.MaxInputBytes = -1 }, want: fieldErr("max_input_bytes", fileLimitsMsg)},
		{name: "max_input_bytes over 4 GiB", set: func(t *store.Tier) { t.MaxInputBytes = 4<<30 + 1 }, want: fieldErr("max_input_bytes", fileLimitsMsg)},
		{name: "negative max_fs_bytes", set: func(t *store.Tier) { t.MaxFSBytes = -1 }, want: fieldErr("max_fs_bytes", fileLimitsMsg)},
		{name: "max_fs_bytes over 4 GiB", set: func(t *store.Tier) { t.MaxFSBytes = 4<<30 + 1 }, want: fieldErr("max_fs_bytes", fileLimitsMsg)},
		{name: "negative max_artifact_bytes", set: func(t *store.Tier) { t.MaxArtifactBytes = -1 }, want: fieldErr("max_artifact_bytes", fileLimitsMsg)},
		{name: "max_artifact_bytes over 4 GiB", set: func(t *store.Tier) { t.MaxArtifactBytes = 4<<30 + 1 }, want: fieldErr("max_artifact_bytes", fileLimitsMsg)},
		{name: "negative max_asset_bytes", set: func(t *store.Tier) { t.MaxAssetBytes = -1 }, want: fieldErr("max_asset_bytes", fileLimitsMsg)},
		{name: "max_asset_bytes over 4 GiB", set: func(t *store.Tier) { t.MaxAssetBytes = 4<<30 + 1 }, want: fieldErr("max_asset_bytes", fileLimitsMsg)},

		{name: "every invalid field at once, in order", set: func(t *store.Tier) { *t = store.Tier{RunsPerDay: -1, MaxFSBytes: -1} },
			want: []apperr.FieldError{
				{Field: "name", Message: nameMsg},
				{Field: "runs_per_day", Message: zeroOrMore},
				{Field: "default_timeout_ms", Message: atLeastOne},
				{Field: "default_memory_mb", Message: atLeastOne},
				{Field: "default_output_bytes", Message: atLeastOne},
				{Field: "max_module_bytes", Message: moduleMsg},
				{Field: "queue_weight", Message: weightMsg},
				{Field: "max_fs_bytes", Message: fileLimitsMsg},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tier := validTier()
			tt.set(&tier)
			require.Equal(t, tt.want, validateTier(tier))
		})
	}
}

// tierFields.apply: a create needs every limit without a default and fills
// the defaults; an update changes only the fields it sends.
func TestTierFieldsApply(t *testing.T) {
	t.Parallel()
	n := func(v int) *int { return &v }
	n64 := func(v int64) *int64 { return &v }
	required := []string{"runs_per_minute", "runs_per_day", "max_concurrent_runs", "default_timeout_ms",
		"max_timeout_ms", "default_memory_mb", "max_memory_mb", "queue_weight", "reads_per_minute"}
	// Every required field, as a create sends them.
	all := func() tierFields {
		return tierFields{RunsPerMinute: n(1), RunsPerDay: n(2), MaxConcurrentRuns: n(3), DefaultTimeoutMS: n(4),
			MaxTimeoutMS: n(5), DefaultMemoryMB: n(6), MaxMemoryMB: n(7), QueueWeight: n(8), ReadsPerMinute: n(9),
			MaxModuleBytes: n64(10)}
	}

	t.Run("create without any field", func(t *testing.T) {
		t.Parallel()
		var tier store.Tier
		errs := tierFields{}.apply(&tier, true)
		want := make([]apperr.FieldError, 0, len(required)+1)
		for _, f := range required {
			want = append(want, apperr.FieldError{Field: f, Message: "is required"})
		}
		want = append(want, apperr.FieldError{Field: "max_module_bytes", Message: "is required"})
		require.Equal(t, want, errs)
	})

	fields := map[string]func(*tierFields){
		"runs_per_minute":     func(f *tierFields) { f.RunsPerMinute = nil },
		"runs_per_day":        func(f *tierFields) { f.RunsPerDay = nil },
		"max_concurrent_runs": func(f *tierFields) { f.MaxConcurrentRuns = nil },
		"default_timeout_ms":  func(f *tierFields) { f.DefaultTimeoutMS = nil },
		"max_timeout_ms":      func(f *tierFields) { f.MaxTimeoutMS = nil },
		"default_memory_mb":   func(f *tierFields) { f.DefaultMemoryMB = nil },
		"max_memory_mb":       func(f *tierFields) { f.MaxMemoryMB = nil },
		"queue_weight":        func(f *tierFields) { f.QueueWeight = nil },
		"reads_per_minute":    func(f *tierFields) { f.ReadsPerMinute = nil },
		"max_module_bytes":    func(f *tierFields) { f.MaxModuleBytes = nil },
	}
	require.Len(t, fields, len(required)+1)
	for field, drop := range fields {
		t.Run(fmt.Sprintf("create without %s", field), func(t *testing.T) {
			t.Parallel()
			f := all()
			drop(&f)
			var tier store.Tier
			require.Equal(t, fieldErr(field, "is required"), f.apply(&tier, true))
		})
	}

	t.Run("create with the required fields only gets the defaults", func(t *testing.T) {
		t.Parallel()
		var tier store.Tier
		require.Empty(t, all().apply(&tier, true))
		require.Equal(t, store.Tier{RunsPerMinute: 1, RunsPerDay: 2, MaxConcurrentRuns: 3, DefaultTimeoutMS: 4,
			MaxTimeoutMS: 5, DefaultMemoryMB: 6, MaxMemoryMB: 7, QueueWeight: 8, ReadsPerMinute: 9, MaxModuleBytes: 10,
			DefaultOutputBytes: 1 << 20, MaxOutputBytes: 1 << 20,
			UploadsPerMinute: defaultUploadsPerMinute, MaxModules: defaultMaxModules,
			MaxModuleStorageBytes: defaultMaxModuleStorageBytes,
			MaxInputBytes:         defaultMaxInputBytes, MaxFSBytes: defaultMaxFSBytes,
			MaxArtifactBytes: defaultMaxArtifactBytes, MaxAssetBytes: defaultMaxAssetBytes}, tier)
	})

	t.Run("create with a default output over 1 MiB raises the maximum to it", func(t *testing.T) {
		t.Parallel()
		f := all()
		f.DefaultOutputBytes = n(2 << 20)
		var tier store.Tier
		require.Empty(t, f.apply(&tier, true))
		require.Equal(t, 2<<20, tier.DefaultOutputBytes)
		require.Equal(t, 2<<20, tier.MaxOutputBytes)
	})

	t.Run("create with every field keeps them", func(t *testing.T) {
		t.Parallel()
		f := all()
		f.DefaultOutputBytes, f.MaxOutputBytes = n(11), n(12)
		f.UploadsPerMinute, f.MaxModules, f.MaxModuleStorageBytes = n(13), n(14), n64(15)
		f.MaxInputBytes, f.MaxFSBytes, f.MaxArtifactBytes, f.MaxAssetBytes = n64(16), n64(17), n64(18), n64(19)
		var tier store.Tier
		require.Empty(t, f.apply(&tier, true))
		require.Equal(t, store.Tier{RunsPerMinute: 1, RunsPerDay: 2, MaxConcurrentRuns: 3, DefaultTimeoutMS: 4,
			MaxTimeoutMS: 5, DefaultMemoryMB: 6, MaxMemoryMB: 7, QueueWeight: 8, ReadsPerMinute: 9, MaxModuleBytes: 10,
			DefaultOutputBytes: 11, MaxOutputBytes: 12, UploadsPerMinute: 13, MaxModules: 14, MaxModuleStorageBytes: 15,
			MaxInputBytes: 16, MaxFSBytes: 17, MaxArtifactBytes: 18, MaxAssetBytes: 19}, tier)
	})

	t.Run("update changes only what it sends", func(t *testing.T) {
		t.Parallel()
		tier := validTier()
		require.Empty(t, tierFields{RunsPerDay: n(7), MaxAssetBytes: n64(0)}.apply(&tier, false))
		want := validTier()
		want.RunsPerDay, want.MaxAssetBytes = 7, 0
		require.Equal(t, want, tier)

		tier = validTier()
		require.Empty(t, tierFields{}.apply(&tier, false))
		require.Equal(t, validTier(), tier)
	})
}
