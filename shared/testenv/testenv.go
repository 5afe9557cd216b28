// Package testenv gives each test its own Postgres database and Redis queue
// namespace.
//
// Tests then run in parallel and never touch a developer's running instance.
//
// Postgres: a migrated template database is made once per schema version
// (named after a hash of the migration files) and each test gets a fresh
// copy, dropped at cleanup. Redis: each test gets a unique queue namespace in
// a dedicated logical database, and its keys are deleted at cleanup.
//
// WIZARD_TEST_DATABASE_URL (a role that may CREATE DATABASE) and
// WIZARD_TEST_REDIS_URL override the defaults, which match scripts/deps.sh.
//
// Goroutines and NoGoroutinesLeft check that what a test stopped left no
// goroutine running (such a test must not be parallel).
package testenv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // Postgres driver
	"github.com/redis/go-redis/v9"

	"github.com/wasmwizard/wasmwizard/migrations"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

// Defaults match the role and database scripts/deps.sh creates.
const (
	DefaultDatabaseURL = "postgres://wasmwizard:wasmwizard@127.0.0.1:5432/postgres?sslmode=disable" //nolint:gosec // development default
	DefaultRedisURL    = "redis://127.0.0.1:6379/15"
)

// DatabaseURL is the maintenance connection used to create test databases.
func DatabaseURL() string {
	if v := os.Getenv("WIZARD_TEST_DATABASE_URL"); v != "" {
		return v
	}
	return DefaultDatabaseURL
}

// RedisURL is the Redis the tests use.
func RedisURL() string {
	if v := os.Getenv("WIZARD_TEST_REDIS_URL"); v != "" {
		return v
	}
	return DefaultRedisURL
}

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// DB creates a fresh, migrated database for t and returns its URL. The
// database is dropped when t ends.
func DB(t testing.TB) string {
	t.Helper()
	templateOnce.Do(func() { templateName, templateErr = makeTemplate() })
	if templateErr != nil {
		t.Fatalf("testenv: %v", templateErr)
	}
	admin := connect(t, DatabaseURL())
	name := fmt.Sprintf("ww_test_%d_%s", time.Now().Unix(), randHex(4))
	ctx := context.Background()
	// Concurrent copies of one template can collide; retry briefly.
	var err error
	for i := 0; i < 50; i++ {
		if _, err = admin.ExecContext(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s`, name, templateName)); err == nil {
			break
		}
		if !strings.Contains(err.Error(), "being accessed by other users") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("testenv: create database: %v", err)
	}
	t.Cleanup(func() {
		_, _ = admin.ExecContext(context.Background(), fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, name))
		_ = admin.Close()
	})
	return withDatabase(DatabaseURL(), name)
}

// Store returns a Store on a fresh database for t.
func Store(t testing.TB) *store.Store {
	t.Helper()
	return OpenStore(t, DB(t), 10)
}

// OpenStore opens a Store on the database at url with at most maxConns
// connections, closed when t ends.
func OpenStore(t testing.TB, url string, maxConns int) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), url, maxConns)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// StoreWithAccount returns Store(t) and an account in it, "a" of the free
// tier.
func StoreWithAccount(t testing.TB) (*store.Store, store.Account) {
	t.Helper()
	st := Store(t)
	a, err := st.CreateAccount(context.Background(), store.Actor{Name: "t"}, "a", "free")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return st, a
}

// Namespace returns a queue namespace unique to t, whose Redis keys are
// deleted when t ends.
func Namespace(t testing.TB) string {
	t.Helper()
	ns := "test-" + randHex(6) + ":"
	t.Cleanup(func() {
		opt, err := redis.ParseURL(RedisURL())
		if err != nil {
			return
		}
		rdb := redis.NewClient(opt)
		defer func() { _ = rdb.Close() }()
		ctx := context.Background()
		for _, pattern := range []string{"asynq:{" + ns + "*", "wasmwizard:{" + ns + "*", ns + "*"} {
			iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
			for iter.Next(ctx) {
				rdb.Del(ctx, iter.Val())
			}
		}
		queues, _ := rdb.SMembers(ctx, "asynq:queues").Result()
		for _, q := range queues {
			if strings.HasPrefix(q, ns) {
				rdb.SRem(ctx, "asynq:queues", q)
			}
		}
	})
	return ns
}

// makeTemplate creates (once per schema version) a migrated database to copy
// test databases from, and drops test databases that crashed runs left
// behind.
func makeTemplate() (string, error) {
	sum, err := migrationsHash()
	if err != nil {
		return "", err
	}
	name := "ww_tpl_" + sum[:16]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := sqlx.Open("postgres", DatabaseURL())
	if err != nil {
		return "", err
	}
	defer func() { _ = admin.Close() }()
	admin.SetMaxOpenConns(1)
	conn, err := admin.Connx(ctx)
	if err != nil {
		return "", fmt.Errorf("connect to %s (run scripts/deps.sh, or set WIZARD_TEST_DATABASE_URL): %w", redact(DatabaseURL()), err)
	}
	defer func() { _ = conn.Close() }()
	// One test process at a time builds templates.
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(727274)`); err != nil {
		return "", err
	}
	defer func() { _, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock(727274)`) }()

	dropStale(ctx, conn)
	var exists bool
	if err := conn.GetContext(ctx, &exists, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	building := name + "_building"
	_, _ = conn.ExecContext(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, building))
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`CREATE DATABASE %s`, building)); err != nil {
		return "", fmt.Errorf("create template: %w", err)
	}
	db, err := sqlx.Open("postgres", withDatabase(DatabaseURL(), building))
	if err != nil {
		return "", err
	}
	_, err = migrations.Up(ctx, db.DB)
	_ = db.Close()
	if err != nil {
		return "", fmt.Errorf("migrate template: %w", err)
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`ALTER DATABASE %s RENAME TO %s`, building, name)); err != nil {
		return "", fmt.Errorf("publish template: %w", err)
	}
	return name, nil
}

// dropStale removes test databases older than an hour (left by killed runs;
// their names carry their creation time).
func dropStale(ctx context.Context, conn *sqlx.Conn) {
	var names []string
	_ = conn.SelectContext(ctx, &names, `SELECT datname FROM pg_database WHERE datname LIKE 'ww\_test\_%'`)
	for _, n := range names {
		parts := strings.Split(n, "_")
		if len(parts) != 4 {
			continue
		}
		sec, err := strconv.ParseInt(parts[2], 10, 64)
		if err != nil || time.Since(time.Unix(sec, 0)) < time.Hour {
			continue
		}
		_, _ = conn.ExecContext(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, n))
	}
}

func migrationsHash() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.Files(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.Files(), path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

func connect(t testing.TB, url string) *sqlx.DB {
	t.Helper()
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	db.SetMaxOpenConns(2)
	return db
}

func withDatabase(raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = "/" + name
	return u.String()
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable>"
	}
	return u.Redacted()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
