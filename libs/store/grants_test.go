package store_test

import (
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// A pair has one grant record: adding it again returns the first; it is
// found from both experiments, removed alone, and removed with either
// experiment.
func TestGrantsRecords(t *testing.T) {
	s := open(t, testenv.Start(t), nil, "grants_test")
	if err := s.EnsureIndexes(ctx(t), store.DataGrants); err != nil {
		t.Fatal(err)
	}
	r := s.Grants()
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	first := uploadapi.Grant{From: "a", To: "b", GrantedBy: "ann@example.com", GrantedAt: at}
	if g, created, err := r.Add(ctx(t), first); err != nil || !created || g != first {
		t.Fatalf("Add = %+v, %v, %v", g, created, err)
	}
	later := first
	later.GrantedBy, later.GrantedAt = "root@example.com", at.Add(time.Hour)
	if g, created, err := r.Add(ctx(t), later); err != nil || created || !g.GrantedAt.Equal(at) || g.GrantedBy != first.GrantedBy {
		t.Fatalf("Add again = %+v, %v, %v; want the first record", g, created, err)
	}
	for _, g := range []uploadapi.Grant{
		{From: "a", To: "c", GrantedBy: "ann@example.com", GrantedAt: at.Add(time.Minute)},
		{From: "c", To: "a", GrantedBy: "cid@example.com", GrantedAt: at},
		{From: "a_b", To: "c", GrantedBy: "x@example.com", GrantedAt: at},
	} {
		if _, _, err := r.Add(ctx(t), g); err != nil {
			t.Fatal(err)
		}
	}
	from, err := r.From(ctx(t), "a")
	if err != nil || len(from) != 2 || from[0].To != "b" || from[1].To != "c" {
		t.Fatalf("From(a) = %+v, %v", from, err)
	}
	to, err := r.To(ctx(t), "a")
	if err != nil || len(to) != 1 || to[0].From != "c" {
		t.Fatalf("To(a) = %+v, %v", to, err)
	}
	if g, err := r.Get(ctx(t), "b", "a"); err != nil || g != nil {
		t.Fatalf("Get of the reverse pair = %+v, %v; want none", g, err)
	}
	if ok, err := r.Remove(ctx(t), "a", "b"); err != nil || !ok {
		t.Fatalf("Remove = %v, %v", ok, err)
	}
	if ok, err := r.Remove(ctx(t), "a", "b"); err != nil || ok {
		t.Fatalf("Remove again = %v, %v; want nothing removed", ok, err)
	}
	gone, err := r.RemoveOf(ctx(t), "a")
	if err != nil || len(gone) != 2 {
		t.Fatalf("RemoveOf(a) = %+v, %v; want a's 2 left", gone, err)
	}
	all, err := r.All(ctx(t))
	if err != nil || len(all) != 1 || all[0].From != "a_b" {
		t.Fatalf("left after RemoveOf(a): %+v, %v; want a_b's only", all, err)
	}
}
