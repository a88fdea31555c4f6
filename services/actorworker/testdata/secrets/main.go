// Command secrets is a test actor of the host operation secret.get, built
// with the SDK (actorsdk.Secret):
//
//	GET /secret/{name}    {"name", "value"}: the secret's value, which only
//	                      a test actor ever answers; a refusal is the host
//	                      error's status and envelope
//	GET /has/{name}       {"name", "set", "length"}: whether it is set,
//	                      without the value
//	GET /init             {"slug", "version"}: the actor is serving
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o secrets.wasm
package main

import "github.com/gnome-platform/gnome/libs/actorsdk"

func init() {
	actorsdk.Route("GET", "/init", func(*actorsdk.Request) *actorsdk.Response {
		return actorsdk.JSON(200, map[string]any{"slug": actorsdk.Slug(), "version": actorsdk.Version()})
	})
	actorsdk.Route("GET", "/secret/{name}", func(req *actorsdk.Request) *actorsdk.Response {
		name := req.PathValue("name")
		v, err := actorsdk.Secret(name)
		if err != nil {
			return actorsdk.Fail(err)
		}
		return actorsdk.JSON(200, map[string]any{"name": name, "value": v})
	})
	actorsdk.Route("GET", "/has/{name}", func(req *actorsdk.Request) *actorsdk.Response {
		name := req.PathValue("name")
		v, err := actorsdk.Secret(name)
		switch {
		case actorsdk.IsCode(err, actorsdk.CodeNotFound):
			return actorsdk.JSON(200, map[string]any{"name": name, "set": false})
		case err != nil:
			return actorsdk.Fail(err)
		}
		return actorsdk.JSON(200, map[string]any{"name": name, "set": true, "length": len(v)})
	})
}

func main() {}
