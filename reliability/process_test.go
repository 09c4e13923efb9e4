package reliability

import (
	"os"
	"testing"
)

// TestStatusBytes reads this test process's own memory figures: the anonymous part is
// positive and never more than the whole resident set; an absent key is an error.
func TestStatusBytes(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc on this system")
	}
	rss, err := ProcessRSS(os.Getpid())
	if err != nil || rss <= 0 {
		t.Fatalf("ProcessRSS = %d, %v", rss, err)
	}
	anon, err := statusBytes(os.Getpid(), "RssAnon:")
	if err != nil || anon <= 0 || anon > rss {
		t.Fatalf("RssAnon = %d (%v), VmRSS %d", anon, err, rss)
	}
	if _, err := statusBytes(os.Getpid(), "NoSuchKey:"); err == nil {
		t.Fatal("a missing key was read")
	}
	if _, err := statusBytes(-1, "VmRSS:"); err == nil {
		t.Fatal("a missing process was read")
	}
}
