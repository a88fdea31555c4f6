package actorworker

import (
	"encoding/json"
	"os"
	"slices"
	"testing"
)

// Every host operation the worker serves is in the host call's schema, and
// the schema names no operation the worker does not serve.
func TestHostOperationsMatchTheirSchema(t *testing.T) {
	raw, err := os.ReadFile("../../schemas/messages/actor-host-call.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Properties struct {
			Op struct {
				Enum []string `json:"enum"`
			} `json:"op"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	documented := doc.Properties.Op.Enum
	var served []string
	for op := range hostOps {
		served = append(served, op)
	}
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Fatalf("host operations: the schema has %v, the worker serves %v", documented, served)
	}
}
