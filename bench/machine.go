package bench

import (
	"fmt"
	"runtime"
	"syscall"
	"time"
)

// KernelCost is what this machine charges for entering the kernel and for waking a thread. Both
// vary far more between virtual machines than CPU speed does (page-table isolation, nested
// paging): a token request costs tens of system calls and a few context switches, so two
// machines with the same crypto bound can differ widely in CPU per token.
type KernelCost struct {
	Syscall    time.Duration `json:"syscall_ns"`           // one getppid(2), the cheapest system call
	WakeupTrip time.Duration `json:"thread_wakeup_rtt_ns"` // two threads passing a byte back and forth over pipes
}

// Summary is the machine line of the report.
func (k KernelCost) Summary() string {
	return fmt.Sprintf("system call %s (getppid), thread wake-up round trip %s (pipe ping-pong)",
		fmtMicros(k.Syscall), fmtMicros(k.WakeupTrip))
}

// MeasureKernelCost times n system calls and n/10 thread wake-up round trips.
func MeasureKernelCost(n int) (KernelCost, error) {
	var k KernelCost
	n = max(n, 10)
	start := time.Now()
	for range n {
		syscall.Getppid()
	}
	k.Syscall = time.Since(start) / time.Duration(n)

	// Two OS threads block in read(2) in turn: each round trip is two wake-ups through the
	// kernel scheduler, the path a goroutine hand-off to a sleeping thread takes.
	var ping, pong [2]int
	if err := syscall.Pipe(ping[:]); err != nil {
		return k, fmt.Errorf("bench: pipe: %w", err)
	}
	defer syscall.Close(ping[0])
	defer syscall.Close(ping[1])
	if err := syscall.Pipe(pong[:]); err != nil {
		return k, fmt.Errorf("bench: pipe: %w", err)
	}
	defer syscall.Close(pong[0])
	defer syscall.Close(pong[1])
	trips := max(n/10, 1)
	echoErr := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		buf := []byte{0}
		for range trips {
			if _, err := syscall.Read(ping[0], buf); err != nil {
				echoErr <- err
				return
			}
			if _, err := syscall.Write(pong[1], buf); err != nil {
				echoErr <- err
				return
			}
		}
		echoErr <- nil
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := []byte{0}
	start = time.Now()
	for range trips {
		if _, err := syscall.Write(ping[1], buf); err != nil {
			return k, fmt.Errorf("bench: wake-up probe: %w", err)
		}
		if _, err := syscall.Read(pong[0], buf); err != nil {
			return k, fmt.Errorf("bench: wake-up probe: %w", err)
		}
	}
	k.WakeupTrip = time.Since(start) / time.Duration(trips)
	if err := <-echoErr; err != nil {
		return k, fmt.Errorf("bench: wake-up probe: %w", err)
	}
	return k, nil
}
