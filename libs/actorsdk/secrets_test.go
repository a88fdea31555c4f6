package actorsdk

import "testing"

// Secret sends secret.get with the name and hands back the value, or the
// host's refusal as a *HostError.
func TestSecret(t *testing.T) {
	f := useFakeHost(t, func(op, req string) string {
		if req == `{"name":"API_KEY"}` {
			return `{"ok":{"value":"sk-1"}}`
		}
		return `{"error":{"code":"not_found","message":"no secret","field":"/name"}}`
	})
	v, err := Secret("API_KEY")
	if err != nil || v != "sk-1" {
		t.Fatalf("Secret = %q, %v", v, err)
	}
	if v, err := Secret("NOPE"); v != "" || !IsCode(err, CodeNotFound) {
		t.Fatalf("Secret of an unset name = %q, %v; want not_found", v, err)
	}
	if len(f.ops) != 2 || f.ops[0] != "secret.get" || f.reqs[1] != `{"name":"NOPE"}` {
		t.Fatalf("calls %v %v", f.ops, f.reqs)
	}
}
