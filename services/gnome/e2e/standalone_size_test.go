package e2e

import (
	"strings"
	"testing"
	"time"
)

// gnome standalone warns when a collection of its experiment is past the
// size where the embedded store slows down, naming the docker package with
// MongoDB as the way up. The threshold is brought down to 3 documents by
// the test-only GNOME_TEST_SLOW_DOCUMENTS: the package's clicks collection
// holds 5, its counters 3.
func TestStandaloneWarnsOfCollectionsPastTheSlowSize(t *testing.T) {
	ex := clicksPackage(t)
	httpAddr := freeAddr(t)
	p := start(t, "gnome", map[string]string{
		"EMBEDDED_STORE_ADDR": freeAddr(t), "LOG_LEVEL": "INFO", "GNOME_TEST_SLOW_DOCUMENTS": "3",
		"ADMIN_EMAIL": saAdminEmail, "ADMIN_PASSWORD": saAdminPassword, "SECRET_KEY": saSecret,
	}, "standalone", ex.zip, "--data-dir", t.TempDir(), "--addr", httpAddr)
	waitHealthy(t, "http://"+httpAddr, p)
	waitFor(t, 20*time.Second, "the warning of the clicks collection", func() bool {
		return strings.Contains(p.Output(), `warning: collection "clicks" of "clicks" has 5 documents, past the 3`)
	})
	out := p.Output()
	for _, want := range []string{"MongoDB is the way up", "docker package", `{"type": "docker"}`, "docker compose up",
		"collection past the size where the embedded store slows down"} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, `collection "counters"`) {
		t.Errorf("the counters collection, at the threshold and not past it, was warned of:\n%s", out)
	}
	if n := strings.Count(out, `warning: collection "clicks"`); n != 1 {
		t.Errorf("the clicks collection was warned of %d times, want once", n)
	}
	p.stop(t)
}
