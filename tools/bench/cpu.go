package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat times;
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuGroups maps a process name (/proc/<pid>/comm, at most 15 bytes) to the
// part of the platform it belongs to. Sandbox children run the worker binary.
var cpuGroups = map[string]string{
	"wasmwizard-api":  "api",
	"wasmwizard-work": "worker",
	"postgres":        "postgres",
	"redis-server":    "redis",
}

// cpuSample is the CPU time (user + system) used so far by each live
// process of a group, and by this process (the load generator).
type cpuSample map[int]procCPU

type procCPU struct {
	group string
	used  time.Duration
}

// sampleCPU samples every process of the groups; of the postgres
// processes only the postmaster pg's and its children (the harness's own
// cluster), when pg is not 0.
func sampleCPU(pg int) cpuSample {
	s := cpuSample{}
	self := os.Getpid()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		pid, err := strconv.Atoi(filepath.Base(dir))
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(dir, "stat")) //nolint:gosec // procfs
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime(14) stime(15)
		open, closing := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
		if open < 0 || closing < open {
			continue
		}
		group := cpuGroups[string(stat[open+1:closing])]
		if group == "worker" {
			// The sandbox children run the worker binary with a subcommand.
			if cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline")); bytes.Contains(cmdline, []byte("sandbox")) { //nolint:gosec // procfs
				group = "sandboxes"
			}
		}
		if pid == self {
			group = "load generator"
		}
		if group == "" {
			continue
		}
		fields := strings.Fields(string(stat[closing+1:]))
		if len(fields) < 13 {
			continue
		}
		if group == "postgres" && pg != 0 && pid != pg && fields[1] != strconv.Itoa(pg) {
			continue // another cluster's
		}
		utime, _ := strconv.ParseInt(fields[11], 10, 64)
		stime, _ := strconv.ParseInt(fields[12], 10, 64)
		s[pid] = procCPU{group: group, used: time.Duration(utime+stime) * time.Second / clockTicks}
	}
	return s
}

// perJob describes the CPU each group used between two samples, per job.
// A process that exits between the samples is not counted (Postgres
// backends of closed connections); one that starts in between counts from
// zero.
func perJob(before, after cpuSample, jobs int, wall time.Duration) string {
	used := map[string]time.Duration{}
	for pid, a := range after {
		b := before[pid]
		if b.group != a.group {
			b.used = 0 // a new process, or a reused pid
		}
		used[a.group] += a.used - b.used
	}
	var parts []string
	var total time.Duration
	for _, g := range []string{"api", "worker", "sandboxes", "postgres", "redis", "load generator"} {
		d := used[g]
		total += d
		parts = append(parts, fmt.Sprintf("%s %.0f", g, us(d/time.Duration(jobs))))
	}
	return fmt.Sprintf("%s µs; %.0f µs in all, %.2f of %d cores busy", strings.Join(parts, ", "),
		us(total/time.Duration(jobs)), total.Seconds()/wall.Seconds(), numCPU())
}
