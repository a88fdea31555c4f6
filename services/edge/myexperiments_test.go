package edge

import (
	"testing"
	"time"
)

func TestByteSize(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 KB", 1536: "1.5 KB", 10 * 1024: "10 KB",
		1153434: "1.1 MB", 512 << 20: "512 MB", 3 << 30: "3.0 GB", 5000 << 40: "5000 TB",
	} {
		if got := byteSize(n); got != want {
			t.Errorf("byteSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestTimeAgo(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		ago  time.Duration
		want string
	}{
		{-5 * time.Second, "just now"}, {30 * time.Second, "just now"}, {time.Minute, "1 minute ago"},
		{3*time.Minute + 59*time.Second, "3 minutes ago"}, {time.Hour, "1 hour ago"}, {23 * time.Hour, "23 hours ago"},
		{30 * time.Hour, "yesterday"}, {3 * 24 * time.Hour, "3 days ago"}, {40 * 24 * time.Hour, "29 Jan 2026"},
	} {
		if got := timeAgo(now.Add(-c.ago), now); got != c.want {
			t.Errorf("timeAgo(now - %s) = %q, want %q", c.ago, got, c.want)
		}
	}
	if got := timeAgo(time.Time{}, now); got != "never" {
		t.Errorf("timeAgo(zero) = %q", got)
	}
}
