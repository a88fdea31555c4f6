package actorsdk

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// Fetch sends the request as http.fetch expects it (body in base64) and
// reads the result; FetchJSON sets the JSON headers, keeps the caller's,
// decodes 2xx and reports other statuses as *StatusError.
func TestFetch(t *testing.T) {
	var status int
	f := useFakeHost(t, func(op, req string) string {
		b, _ := json.Marshal(map[string]any{"ok": map[string]any{"status": status, "headers": map[string][]string{"Content-Type": {"application/json"}},
			"body": []byte(`{"answer":42}`), "url": "https://api.example.com/v1"}})
		return string(b)
	})
	status = 200
	res, err := Fetch(FetchRequest{Method: "PUT", URL: "https://api.example.com/v1", Header: Header{"X-Key": {"k"}}, Body: []byte("hi"), TimeoutMS: 500})
	if err != nil || res.Status != 200 || res.Header.Get("content-type") != "application/json" || !res.OK() {
		t.Fatalf("Fetch: %+v, %v", res, err)
	}
	var got struct{ Answer int }
	if err := res.DecodeJSON(&got); err != nil || got.Answer != 42 {
		t.Errorf("DecodeJSON: %v %v", got, err)
	}
	if f.ops[0] != "http.fetch" || f.reqs[0] != `{"method":"PUT","url":"https://api.example.com/v1","headers":{"X-Key":["k"]},"body":"aGk=","timeout_ms":500}` {
		t.Errorf("request sent: %s %s", f.ops[0], f.reqs[0])
	}

	var out struct{ Answer int }
	if _, err := FetchJSON("POST", "https://api.example.com/v1", Header{"authorization": {"Bearer k"}}, map[string]string{"q": "x"}, &out); err != nil || out.Answer != 42 {
		t.Fatalf("FetchJSON: %v %v", out, err)
	}
	var sent FetchRequest
	if err := json.Unmarshal([]byte(f.reqs[1]), &sent); err != nil {
		t.Fatal(err)
	}
	if sent.Header.Get("Content-Type") != "application/json" || sent.Header.Get("Accept") != "application/json" || sent.Header.Get("Authorization") != "Bearer k" || string(sent.Body) != `{"q":"x"}` {
		t.Errorf("FetchJSON sent %+v", sent)
	}

	status = 503
	res, err = FetchJSON("GET", "https://api.example.com/v1", nil, nil, &out)
	var se *StatusError
	if !errors.As(err, &se) || se.Response.Status != 503 || res == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("a 503: %v %v", res, err)
	}
}

// A refusal of the platform is a *HostError with its catalogue code, whose
// status Fail answers with.
func TestFetchRefused(t *testing.T) {
	useFakeHost(t, func(op, req string) string {
		return `{"error": {"code": "http_forbidden_address", "message": "meta.example.com resolves to 169.254.169.254"}}`
	})
	_, err := Fetch(FetchRequest{URL: "http://meta.example.com/"})
	if !IsCode(err, CodeHTTPForbiddenAddress) || StatusOf(CodeHTTPForbiddenAddress) != 403 || StatusOf(CodeHTTPFailed) != 502 || StatusOf(CodeRateLimited) != 429 {
		t.Errorf("refusal: %v", err)
	}
}
