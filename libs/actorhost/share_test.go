package actorhost

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestShareModule: handles made by Share run instances of one compiled
// module side by side, under one name, and the code lives until the last
// handle is closed.
func TestShareModule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	wasm := testdataGuest(t, "rawabi")
	m, err := testEngine(t).Compile(ctx, wasm, Limits{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h := &testHost{t: t}
	if _, err := m.Share(Limits{MemoryMB: DefaultMemoryMB * 2}); err == nil {
		t.Fatal("shared with another memory limit than its runtime's")
	}
	a, err := m.Share(Limits{Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Share(Limits{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if a.Limits().Timeout != 3*time.Second || b.Limits().Timeout != 5*time.Second {
		t.Fatalf("limits %v and %v", a.Limits(), b.Limits())
	}
	// The same name twice: two instances of one actor, or two actors
	// whose names meet, in the one runtime.
	ia, err := a.Instantiate(ctx, "same", h, Init{Slug: "raw", Version: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ib, err := b.Instantiate(ctx, "same", h, Init{Slug: "raw", Version: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustDo(t, ia, "GET", "/init", "", ada, 200)
	mustDo(t, ib, "GET", "/init", "", ada, 200)

	// The first owner and one handle go: the other handle's instance and
	// new instances of it go on.
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(ctx); err != nil { // twice is harmless and counts once
		t.Fatal(err)
	}
	_ = ia.Close(ctx)
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	mustDo(t, ib, "GET", "/init", "", ada, 200)
	ic, err := b.Instantiate(ctx, "same", h, Init{Slug: "raw", Version: 1}, nil)
	if err != nil {
		t.Fatalf("instantiate after the other handles closed: %v", err)
	}
	mustDo(t, ic, "GET", "/init", "", ada, 200)
	_ = ic.Close(ctx)
	_ = ib.Close(ctx)
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Share(Limits{}); err == nil {
		t.Fatal("shared after the last handle closed")
	}

	// A refusal of gnome_init is recognisable.
	m2 := compile(t, wasm, Limits{Timeout: 10 * time.Second})
	_, err = m2.Instantiate(ctx, "refuse", h, Init{Slug: "raw", Version: 1, Config: map[string]any{"refuse": "no"}}, nil)
	if !errors.Is(err, ErrInitRefused) {
		t.Fatalf("init refusal: %v", err)
	}
}
