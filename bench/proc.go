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

// parseStatCPU reads utime + stime from a /proc/PID/stat line.
func parseStatCPU(data []byte) (time.Duration, error) {
	user, sys, err := parseStatTimes(data)
	return user + sys, err
}

// parseStatTimes reads utime and stime (fields 14 and 15) from a /proc/PID/stat line. The
// command name (field 2) is in parentheses and may hold spaces and parentheses, so fields are
// counted after the last ')'.
func parseStatTimes(data []byte) (user, sys time.Duration, err error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("%w: malformed stat", ErrNoProc)
	}
	fields := strings.Fields(string(data[i+1:]))
	// fields[0] is field 3 (state); utime is field 14, stime field 15.
	if len(fields) < 13 {
		return 0, 0, fmt.Errorf("%w: short stat", ErrNoProc)
	}
	utime, err1 := strconv.ParseUint(fields[11], 10, 64)
	stime, err2 := strconv.ParseUint(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("%w: stat times: %w", ErrNoProc, errors.Join(err1, err2))
	}
	return time.Duration(utime) * clockTick, time.Duration(stime) * clockTick, nil
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

// KernelCounters is what a process has asked of the kernel, all threads included: where system
// calls and context switches are expensive (a virtual machine with page-table isolation, say),
// they explain CPU per token that the profile of the Go code does not.
type KernelCounters struct {
	SysCPU      time.Duration // stime of /proc/PID/stat
	IOCalls     int64         // read- and write-family system calls (syscr + syscw of /proc/PID/io)
	CtxSwitches int64         // voluntary + involuntary, summed over /proc/PID/task/*/status
}

// ProcessKernel reads pid's KernelCounters. Threads that exit between two readings take their
// context switches with them; the Go runtime keeps its threads, so the error is small.
func ProcessKernel(pid int) (KernelCounters, error) {
	var k KernelCounters
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return k, fmt.Errorf("%w: %w", ErrNoProc, err)
	}
	if _, k.SysCPU, err = parseStatTimes(stat); err != nil {
		return k, err
	}
	io, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return k, fmt.Errorf("%w: %w", ErrNoProc, err)
	}
	if k.IOCalls, err = parseIOCalls(io); err != nil {
		return k, err
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return k, fmt.Errorf("%w: %w", ErrNoProc, err)
	}
	for _, t := range tasks {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
		if err != nil {
			continue // the thread exited
		}
		n, err := parseCtxSwitches(status)
		if err != nil {
			return k, err
		}
		k.CtxSwitches += n
	}
	return k, nil
}

// parseIOCalls sums syscr and syscw of /proc/PID/io (proc(5)): read(2), pread(2), write(2),
// pwrite(2) and their vector forms.
func parseIOCalls(data []byte) (int64, error) {
	return sumCounters(data, "io", "syscr", "syscw")
}

// parseCtxSwitches sums the voluntary and involuntary context switches of a status file.
func parseCtxSwitches(data []byte) (int64, error) {
	return sumCounters(data, "status", "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")
}

// sumCounters adds the "key: number" lines of a /proc file for the two keys; both must be there.
func sumCounters(data []byte, file, key1, key2 string) (int64, error) {
	var sum int64
	found := 0
	for line := range strings.SplitSeq(string(data), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != key1 && key != key2) {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%w: %s %s: %q", ErrNoProc, file, key, val)
		}
		sum += n
		found++
	}
	if found != 2 {
		return 0, fmt.Errorf("%w: %s: no %s and %s", ErrNoProc, file, key1, key2)
	}
	return sum, nil
}
