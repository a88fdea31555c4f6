package actorsdk

import (
	"encoding/json"
	"errors"
)

// Init is what the platform tells an instance when it starts: the init
// envelope.
type Init struct {
	// Slug is the experiment's slug.
	Slug string `json:"slug"`
	// Version is the version of the bundle the actor comes from.
	Version int `json:"version"`
	// Config is the manifest's actor.config, {} when it has none.
	Config json.RawMessage `json:"config"`
	// Script is set only for the platform's JavaScript runtime: the
	// actor's scripts (docs/actors.md, section 9).
	Script *Script `json:"script,omitempty"`
}

// Script is a JavaScript actor's code: the entry script's bundle path and
// the source of every script it may load, by bundle path.
type Script struct {
	Entry string            `json:"entry"`
	Files map[string]string `json:"files"`
}

var (
	started   *Init
	initHooks []func(Init) error
)

// OnInit registers f to run when the instance starts, after every package's
// init and before any request. An error refuses to start: the platform shows
// its message as the actor's state. A *HostError keeps its code.
func OnInit(f func(Init) error) { initHooks = append(initHooks, f) }

// Slug is the experiment's slug ("" before the instance has started).
func Slug() string {
	if started == nil {
		return ""
	}
	return started.Slug
}

// Version is the experiment's version (0 before the instance has started).
func Version() int {
	if started == nil {
		return 0
	}
	return started.Version
}

// Config is the manifest's actor.config; an empty M when it has none or it
// cannot be read.
func Config() M {
	var m M
	if err := DecodeConfig(&m); err != nil || m == nil {
		return M{}
	}
	return m
}

// DecodeConfig decodes the manifest's actor.config into v.
func DecodeConfig(v any) error {
	if started != nil && len(started.Config) > 0 && string(started.Config) != "null" {
		return json.Unmarshal(started.Config, v)
	}
	var raw json.RawMessage
	if err := Call("config", nil, &raw); err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// start handles the init envelope and returns nil, or the error envelope
// that refuses to start.
func start(env []byte) []byte {
	var in Init
	if err := json.Unmarshal(env, &in); err != nil {
		return errorEnvelope(CodeBadRequest, "the init envelope is malformed: "+err.Error())
	}
	if len(in.Config) == 0 || string(in.Config) == "null" {
		in.Config = json.RawMessage("{}")
	}
	started = &in
	for _, f := range initHooks {
		if err := f(in); err != nil {
			code := CodeUnavailable
			var he *HostError
			if errors.As(err, &he) {
				code = he.Code
			}
			return errorEnvelope(code, err.Error())
		}
	}
	return nil
}

func errorEnvelope(code, message string) []byte {
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": message}})
	return b
}
