package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Instance is one live service instance found on the bus.
type Instance struct {
	Service   string `json:"service"`
	ID        string `json:"id"`
	Instance  string `json:"instance,omitempty"`
	Version   string `json:"version,omitempty"`
	StartedAt string `json:"started_at,omitempty"`
}

// Discover asks every micro service on the bus to identify itself
// ($SRV.PING) and gathers the answers until none has come for quiet, or
// until max. Services are grouped by name, instances sorted by ID.
func Discover(ctx context.Context, nc *nats.Conn, quiet, max time.Duration) (map[string][]Instance, error) {
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("subscribe for discovery: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	subject, _ := micro.ControlSubject(micro.PingVerb, "", "")
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		return nil, fmt.Errorf("publish discovery ping: %w", err)
	}
	out := map[string][]Instance{}
	deadline := time.Now().Add(max)
	wait := max
	for {
		if d := time.Until(deadline); d < wait {
			wait = d
		}
		if wait <= 0 {
			break
		}
		if ctx.Err() != nil {
			break
		}
		msg, err := sub.NextMsg(wait)
		if err != nil {
			break
		}
		var p micro.Ping
		if json.Unmarshal(msg.Data, &p) != nil || p.Name == "" {
			continue
		}
		out[p.Name] = append(out[p.Name], Instance{
			Service: p.Name, ID: p.ID, Version: p.Version,
			Instance: p.Metadata["instance"], StartedAt: p.Metadata["started_at"],
		})
		wait = quiet
	}
	for _, list := range out {
		sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	}
	return out, ctx.Err()
}
