package actorworker

import (
	"errors"
	"testing"

	"github.com/gnome-platform/gnome/libs/actorhost"
)

// The response envelope is checked exactly (docs/actors.md, section 4):
// what checkResponse lets through is what the edge can turn into a
// response, and anything else is a malformed response.
func TestCheckResponse(t *testing.T) {
	for _, good := range []string{
		`{"status":200}`,
		`{"status":599,"headers":{},"body":null}`,
		`{"status":200,"headers":{"Content-Type":["application/json"],"X-A_b.c~!#$%&'*+^|` + "`" + `":[]},"body":"eyJvayI6dHJ1ZX0="}`,
		`{"status":204,"body":""}`,
		`{"status":200,"body":"eyJv\nayI6dHJ1ZX0="}`, // base64 may be wrapped, as base64.StdEncoding reads it
		` {"status":200} `,
	} {
		if err := checkResponse([]byte(good)); err != nil {
			t.Errorf("%s: %v", good, err)
		}
	}
	for _, bad := range []string{
		``,
		`null`,
		`[]`,
		`{}`,
		`{"status":199}`,
		`{"status":600}`,
		`{"status":"200"}`,
		`{"status":200.5}`,
		`{"status":200,"extra":1}`,
		`{"status":200,"headers":{"Bad Name":["x"]}}`,
		`{"status":200,"headers":{"":["x"]}}`,
		`{"status":200,"headers":{"Bad:Name":["x"]}}`,
		`{"status":200,"headers":{"Caf\u00e9":["x"]}}`,
		`{"status":200,"headers":{"X":null}}`,
		`{"status":200,"headers":{"X":"v"}}`,
		`{"status":200,"headers":{"X":[1]}}`,
		`{"status":200,"body":"not base64!"}`,
		`{"status":200,"body":"QQ==QUFB"}`,
		`{"status":200,"body":"QQ"}`,
		`{"status":200,"body":12}`,
		`{"status":200,"body":["QQ=="]}`,
		`{"status":200} {"status":200}`,
		`{"status":200}x`,
	} {
		if err := checkResponse([]byte(bad)); !errors.Is(err, actorhost.ErrBadResponse) {
			t.Errorf("%s: %v, want a malformed response", bad, err)
		}
	}
}

func BenchmarkCheckResponse(b *testing.B) {
	out := []byte(`{"status":200,"headers":{"Content-Type":["application/json"]},"body":"eyJvayI6dHJ1ZX0="}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := checkResponse(out); err != nil {
			b.Fatal(err)
		}
	}
}
