// Command fetch is a test actor of the http.fetch host operation, written
// with the SDK:
//
//	GET  /init        200 (the harness waits for it)
//	POST /fetch       sends the body (an actorsdk.FetchRequest) and answers
//	                  200 with {"response": {status, headers, body, url}} or
//	                  {"error": {code, message, field}}
//	POST /json        {"url": U, "in": V}: FetchJSON POST of V to U, answers
//	                  {"out": what came back} or {"error": ...}
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o fetch.wasm
package main

import (
	"errors"

	"github.com/gnome-platform/gnome/libs/actorsdk"
)

type result struct {
	Response *response           `json:"response,omitempty"`
	Out      any                 `json:"out,omitempty"`
	Error    *actorsdk.HostError `json:"error,omitempty"`
	Status   int                 `json:"status,omitempty"`
}

type response struct {
	Status int             `json:"status"`
	Header actorsdk.Header `json:"headers"`
	Body   string          `json:"body"`
	URL    string          `json:"url"`
}

func answer(err error, r result) *actorsdk.Response {
	var he *actorsdk.HostError
	var se *actorsdk.StatusError
	switch {
	case errors.As(err, &he):
		r.Error = he
	case errors.As(err, &se):
		r.Status = se.Response.Status
	case err != nil:
		return actorsdk.Fail(err)
	}
	return actorsdk.JSON(200, r)
}

func init() {
	actorsdk.Route("GET", "/init", func(*actorsdk.Request) *actorsdk.Response { return actorsdk.Text(200, "ok") })
	actorsdk.Route("POST", "/fetch", func(req *actorsdk.Request) *actorsdk.Response {
		var in actorsdk.FetchRequest
		if err := req.DecodeJSON(&in); err != nil {
			return actorsdk.Error(400, actorsdk.CodeInvalidJSON, err.Error())
		}
		res, err := actorsdk.Fetch(in)
		var r result
		if err == nil {
			r.Response = &response{Status: res.Status, Header: res.Header, Body: string(res.Body), URL: res.URL}
		}
		return answer(err, r)
	})
	actorsdk.Route("POST", "/json", func(req *actorsdk.Request) *actorsdk.Response {
		var in struct {
			URL string `json:"url"`
			In  any    `json:"in"`
		}
		if err := req.DecodeJSON(&in); err != nil {
			return actorsdk.Error(400, actorsdk.CodeInvalidJSON, err.Error())
		}
		var out any
		_, err := actorsdk.FetchJSON("POST", in.URL, actorsdk.Header{"Authorization": {"Bearer test-key"}}, in.In, &out)
		return answer(err, result{Out: out})
	})
}

func main() {}
