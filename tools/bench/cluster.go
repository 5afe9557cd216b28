package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// cluster is a Postgres cluster of the harness's own: what it counts (WAL
// bytes, commit records, the CPU of its processes) is the platform's alone,
// whatever else runs on the machine. Its settings are Postgres's defaults
// (durable commits, fsync on), as a deployment's would be.
type cluster struct {
	bin, data string
	port      int
	asPG      []string
	// pid is the postmaster's: its children are the cluster's processes.
	pid int
	// statements: pg_stat_statements is loaded (see startCluster).
	statements bool
}

// statementsOn is whether the cluster behind the harness's statistics
// connections records statement times; set once the cluster started.
var statementsOn bool

// startCluster makes and starts a cluster in dir.
func startCluster(ctx context.Context, dir string) (*cluster, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	if len(dirs) == 0 {
		return nil, errors.New("no PostgreSQL server binaries under /usr/lib/postgresql (run scripts/deps.sh)")
	}
	c := &cluster{bin: dirs[len(dirs)-1], data: filepath.Join(dir, "pg"), port: freePort()}
	if err := os.MkdirAll(c.data, 0o700); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		// Postgres refuses to run as root: run it as the postgres user.
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs a postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		_ = os.Chmod(dir, 0o755) //nolint:gosec // the postgres user must reach its data directory
		if err := os.Chown(c.data, uid, gid); err != nil {
			return nil, err
		}
		c.asPG = []string{"runuser", "-u", "postgres", "--"}
	}
	if out, err := c.tool(ctx, "initdb", "-D", c.data, "-A", "trust", "-U", "postgres", "--no-sync"); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=200", c.port, c.data)
	// pg_stat_statements (Postgres's contrib, in Debian's server package)
	// gives the time each statement took: the profile of a phase (see
	// since). It costs a little CPU per statement, the same in every step.
	if _, err := os.Stat(filepath.Join(c.bin, "..", "lib", "pg_stat_statements.so")); err == nil {
		opts += " -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
		c.statements = true
	}
	if out, err := c.tool(ctx, "pg_ctl", "start", "-D", c.data, "-w", "-t", "60", "-l", filepath.Join(c.data, "server.log"),
		"-o", opts); err != nil {
		return nil, fmt.Errorf("pg_ctl start: %w: %s", err, out)
	}
	pid, err := os.ReadFile(filepath.Join(c.data, "postmaster.pid")) //nolint:gosec // our own cluster
	if err != nil {
		return c, err
	}
	c.pid, _ = strconv.Atoi(strings.TrimSpace(strings.SplitN(string(pid), "\n", 2)[0]))
	return c, nil
}

func (c *cluster) tool(ctx context.Context, tool string, args ...string) ([]byte, error) {
	argv := append(append([]string{}, c.asPG...), filepath.Join(c.bin, tool))
	argv = append(argv, args...)
	return exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput() //nolint:gosec // the cluster's own tools
}

// url is the address of database db as the superuser.
func (c *cluster) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

func (c *cluster) stop() {
	_, _ = c.tool(context.Background(), "pg_ctl", "stop", "-D", c.data, "-m", "fast", "-w")
}

// walMark is a point in the cluster's WAL and its statistics.
type walMark struct {
	lsn     string
	syncs   int64
	commits int64 // the database's xact_commit (read-only transactions too)
}

// readMark reads the WAL's insert position and the statistics. Backends
// report their statistics at most once a second when they go idle, so a
// mark taken right after a phase waits that long first.
func readMark(ctx context.Context, db *sqlx.DB) (walMark, error) {
	var m walMark
	err := db.QueryRowContext(ctx, `SELECT pg_current_wal_insert_lsn()::text, w.wal_sync,
		(SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())
		FROM pg_stat_wal w`).Scan(&m.lsn, &m.syncs, &m.commits)
	return m, err
}

// mark checkpoints (so that every phase starts alike: the first change of
// a page after a checkpoint logs the whole page) and reads the mark.
func mark(ctx context.Context, db *sqlx.DB) (walMark, error) {
	time.Sleep(1100 * time.Millisecond) // the statistics of the phase before
	if _, err := db.ExecContext(ctx, `CHECKPOINT`); err != nil {
		return walMark{}, err
	}
	if statementsOn {
		if _, err := db.ExecContext(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
			return walMark{}, err
		}
		if _, err := db.ExecContext(ctx, `SELECT pg_stat_statements_reset()`); err != nil {
			return walMark{}, err
		}
	}
	return readMark(ctx, db)
}

// walCost is what the cluster wrote between two marks, per job.
type walCost struct {
	bytes, fpiBytes, syncs float64
	// commits counts the WAL's commit records: durable commits (a
	// read-only transaction writes none).
	commits float64
	// xacts is the database's committed transactions, read-only ones too.
	xacts float64
	// top is the record types that wrote most of the bytes.
	top string
	// statements is the statements that took most of Postgres's time
	// (pg_stat_statements; empty when it is not loaded).
	statements string
	// walStatements is the statements that wrote most WAL records: calls
	// and records per job (a statement that writes any record has a
	// transaction ID, so one outside a job's three commits is a commit of
	// its own).
	walStatements string
}

// since measures the WAL the cluster wrote from m to now, per job, with
// pg_walinspect's statistics by record type.
func since(ctx context.Context, db *sqlx.DB, m walMark, jobs int) (walCost, error) {
	var c walCost
	time.Sleep(1100 * time.Millisecond) // the statistics of the phase's backends
	end, err := readMark(ctx, db)
	if err != nil {
		return c, err
	}
	var bytes int64
	if err := db.QueryRowContext(ctx, `SELECT $2::pg_lsn - $1::pg_lsn`, m.lsn, end.lsn).Scan(&bytes); err != nil {
		return c, err
	}
	// pg_walinspect reads only flushed WAL.
	if _, err := db.ExecContext(ctx, `CREATE EXTENSION IF NOT EXISTS pg_walinspect`); err != nil {
		return c, err
	}
	if _, err := db.ExecContext(ctx, `SELECT pg_switch_wal()`); err != nil {
		return c, err
	}
	rows, err := db.QueryContext(ctx, `SELECT "resource_manager/record_type", count, fpi_size, combined_size
		FROM pg_get_wal_stats($1::pg_lsn, $2::pg_lsn, true) WHERE count > 0 ORDER BY combined_size DESC`, m.lsn, end.lsn)
	if err != nil {
		return c, err
	}
	defer func() { _ = rows.Close() }()
	j := float64(jobs)
	var top []string
	for rows.Next() {
		var name string
		var n, fpi, size int64
		if err := rows.Scan(&name, &n, &fpi, &size); err != nil {
			return c, err
		}
		c.fpiBytes += float64(fpi) / j
		if name == "Transaction/COMMIT" {
			c.commits = float64(n) / j
		}
		if len(top) < 8 {
			top = append(top, fmt.Sprintf("%s %.2f× %.0f B", name, float64(n)/j, float64(size)/j))
		}
	}
	if err := rows.Err(); err != nil {
		return c, err
	}
	c.bytes, c.syncs, c.xacts = float64(bytes)/j, float64(end.syncs-m.syncs)/j, float64(end.commits-m.commits)/j
	c.top = strings.Join(top, ", ")
	if statementsOn {
		if c.statements, err = topStatements(ctx, db, j); err != nil {
			return c, err
		}
		if c.walStatements, err = walStatements(ctx, db, j); err != nil {
			return c, err
		}
	}
	return c, nil
}

// notHarness leaves the harness's own statements out of pg_stat_statements
// (its measurements, and pg_walinspect's installation script).
const notHarness = `query NOT LIKE '%pg_stat%' AND query NOT LIKE '%pg_get_wal%'
	AND query NOT LIKE '%pg_current_wal%' AND query NOT LIKE 'CHECKPOINT%' AND query NOT LIKE '%pg_switch_wal%'
	AND query NOT LIKE '%pg_walinspect%' AND query NOT LIKE '%EXECUTE ON FUNCTION%'`

// topStatements is the statements that took most of Postgres's execution
// time since the mark, per job: calls and µs, each named by its first words
// (the harness's own statements left out).
func topStatements(ctx context.Context, db *sqlx.DB, jobs float64) (string, error) {
	var rows []struct {
		Query string  `db:"query"`
		Calls float64 `db:"calls"`
		MS    float64 `db:"ms"`
	}
	if err := db.SelectContext(ctx, &rows, `SELECT query, calls::float8 AS calls, total_exec_time AS ms
		FROM pg_stat_statements WHERE `+notHarness+`
		ORDER BY total_exec_time DESC LIMIT 8`); err != nil {
		return "", err
	}
	var all float64
	if err := db.GetContext(ctx, &all, `SELECT coalesce(sum(total_exec_time), 0) FROM pg_stat_statements`); err != nil {
		return "", err
	}
	out := []string{fmt.Sprintf("all %.0f µs", all*1000/jobs)}
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%s %.2f× %.0f µs", statementName(r.Query), r.Calls/jobs, r.MS*1000/jobs))
	}
	return strings.Join(out, ", "), nil
}

// walStatements is the statements that wrote most WAL records since the
// mark, per job: calls and records, each named by its first words (the
// harness's own statements left out).
func walStatements(ctx context.Context, db *sqlx.DB, jobs float64) (string, error) {
	var rows []struct {
		Query   string  `db:"query"`
		Calls   float64 `db:"calls"`
		Records float64 `db:"records"`
	}
	if err := db.SelectContext(ctx, &rows, `SELECT query, calls::float8 AS calls, wal_records::float8 AS records
		FROM pg_stat_statements WHERE wal_records > 0 AND `+notHarness+`
		ORDER BY wal_records DESC LIMIT 8`); err != nil {
		return "", err
	}
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%s %.2f× %.2f records", statementName(r.Query), r.Calls/jobs, r.Records/jobs))
	}
	return strings.Join(out, ", "), nil
}

// statementName is a statement's first words, enough to find it in the
// code: its first CTE or verb and table.
func statementName(q string) string {
	f := strings.Fields(q)
	if len(f) > 6 {
		f = f[:6]
	}
	return "`" + strings.Join(f, " ") + "`"
}

func (c walCost) String() string {
	return fmt.Sprintf("%.2f commits (%.2f transactions), %.0f WAL bytes (%.0f of them full pages), %.2f WAL flushes",
		c.commits, c.xacts, c.bytes, c.fpiBytes, c.syncs)
}
