package migrations_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	_ "github.com/lib/pq"
	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/migrations"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
)

// Migration 00005 gives each account its own copy of the module bytes it
// holds, and its Down puts them back to one copy per SHA-256.
func TestBlobsSplitPerAccount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin, err := sql.Open("postgres", testenv.DatabaseURL())
	require.NoError(t, err)
	name := fmt.Sprintf("ww_test_mig_%d", time.Now().UnixNano())
	_, err = admin.ExecContext(ctx, "CREATE DATABASE "+name)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		_ = admin.Close()
	})
	u, err := url.Parse(testenv.DatabaseURL())
	require.NoError(t, err)
	u.Path = "/" + name
	db, err := sql.Open("postgres", u.String())
	require.NoError(t, err)
	defer func() { _ = db.Close() }()

	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.Files(), goose.WithAllowOutofOrder(true))
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 4)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `
		INSERT INTO accounts (id, name, tier, webhook_secret) VALUES
			('00000000-0000-0000-0000-00000000000a', 'a', 'free', 's'),
			('00000000-0000-0000-0000-00000000000b', 'b', 'free', 's');
		INSERT INTO module_blobs (sha256, size_bytes, content) VALUES
			(decode(repeat('11', 32), 'hex'), 3, 'one'),
			(decode(repeat('22', 32), 'hex'), 3, 'two'),
			(decode(repeat('33', 32), 'hex'), 5, 'three');
		INSERT INTO modules (id, account_id, sha256, size_bytes) VALUES
			('00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-00000000000a', decode(repeat('11', 32), 'hex'), 3),
			('00000000-0000-0000-0000-000000000002', '00000000-0000-0000-0000-00000000000b', decode(repeat('11', 32), 'hex'), 3),
			('00000000-0000-0000-0000-000000000003', '00000000-0000-0000-0000-00000000000b', decode(repeat('22', 32), 'hex'), 3);`)
	require.NoError(t, err)

	_, err = p.UpTo(ctx, 5)
	require.NoError(t, err)
	var got []string
	rows, err := db.QueryContext(ctx, `SELECT right(account_id::text, 1) || ':' || convert_from(content, 'UTF8')
		FROM module_blobs ORDER BY 1`)
	require.NoError(t, err)
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		got = append(got, s)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, "a:one b:one b:two", strings.Join(got, " "), "copies per account; unreferenced bytes dropped")

	_, err = p.DownTo(ctx, 4)
	require.NoError(t, err)
	var n int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM module_blobs`).Scan(&n))
	require.Equal(t, 2, n)
	_, err = p.UpTo(ctx, 5)
	require.NoError(t, err)
}
