package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc/PID/stat times: 100 on every Linux architecture Go
// supports (the kernel exports CPU times in USER_HZ regardless of CONFIG_HZ).
const clockTick = 10 * time.Millisecond

// ErrNoProc means the process accounting files are not available (not Linux, or the process is
// gone).
var ErrNoProc = errors.New("bench: /proc accounting unavailable")

// ProcessCPU returns the user+system CPU time pid has consumed, all threads included, from
// /proc/PID/stat (proc(5) fields 14 and 15).
func ProcessCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNoProc, err)
	}
	return parseStatCPU(data)
}

// parseStatCPU reads utime and stime from a /proc/PID/stat line. The command name (field 2) is
// in parentheses and may hold spaces and parentheses, so fields are counted after the last ')'.
func parseStatCPU(data []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("%w: malformed stat", ErrNoProc)
	}
	fields := strings.Fields(string(data[i+1:]))
	// fields[0] is field 3 (state); utime is field 14, stime field 15.
	if len(fields) < 13 {
		return 0, fmt.Errorf("%w: short stat", ErrNoProc)
	}
	utime, err1 := strconv.ParseUint(fields[11], 10, 64)
	stime, err2 := strconv.ParseUint(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%w: stat times: %w", ErrNoProc, errors.Join(err1, err2))
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// PeakRSS returns the process's peak resident set size (VmHWM in /proc/PID/status), in bytes.
func PeakRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNoProc, err)
	}
	return parseStatusKB(data, "VmHWM:")
}

func parseStatusKB(data []byte, key string) (int64, error) {
	for line := range strings.SplitSeq(string(data), "\n") {
		rest, ok := strings.CutPrefix(line, key)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 1 {
			break
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: %s: %w", ErrNoProc, key, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("%w: no %s", ErrNoProc, key)
}

// PostgresBackendCPU sums the CPU time of the PostgreSQL backend processes serving database
// dbName on this machine (process titles "postgres: USER DBNAME HOST(PORT) STATE", see
// postgres(1) update_process_title). The shared background processes (WAL writer, checkpointer)
// are not included. Backends that exit between two calls lose their time, so compare snapshots
// taken while the connection pools are open.
func PostgresBackendCPU(dbName string) (time.Duration, error) {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNoProc, err)
	}
	var sum time.Duration
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !isBackendOf(string(cmd), dbName) {
			continue
		}
		if cpu, err := ProcessCPU(pid); err == nil {
			sum += cpu
		}
	}
	return sum, nil
}

// isBackendOf reports whether a process title is a PostgreSQL backend connected to dbName; a
// cluster_name ("15/main: ") may precede the user.
func isBackendOf(title, dbName string) bool {
	rest, ok := strings.CutPrefix(strings.TrimRight(title, "\x00 "), "postgres: ")
	if !ok {
		return false
	}
	f := strings.Fields(rest)
	if len(f) > 0 && strings.HasSuffix(f[0], ":") {
		f = f[1:]
	}
	return len(f) >= 2 && f[1] == dbName
}
