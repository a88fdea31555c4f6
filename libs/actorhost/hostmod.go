package actorhost

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/gnome-platform/gnome/libs/apierr"
)

// HostModule is the import module name of the host functions.
const HostModule = "gnome"

// maxOpName and maxHostRequest bound what a guest may pass to call.
const (
	maxOpName      = 64
	maxHostRequest = 1 << 20
)

func instantiateHostModule(ctx context.Context, rt wazero.Runtime) error {
	_, err := rt.NewHostModuleBuilder(HostModule).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostLog), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, nil).Export("log").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostCall), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI64}).Export("call").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostTake), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI64}).Export("take").
		Instantiate(ctx)
	if err != nil {
		return fmt.Errorf("provide host functions: %w", err)
	}
	return nil
}

func state(ctx context.Context) *callState {
	st, _ := ctx.Value(stateKey{}).(*callState)
	return st
}

func hostLog(ctx context.Context, m api.Module, stack []uint64) {
	st := state(ctx)
	level, ptr, n := int(uint32(stack[0])), uint32(stack[1]), min(uint32(stack[2]), MaxLogLine)
	if st == nil {
		return
	}
	// The budget is paid before the guest's memory is read: a line over
	// it costs no copy.
	if ok, started := st.logs.take(int(n)); !ok {
		if started {
			warnDropped(ctx, st.log, st.actor, "gnome.log", st.logs)
		}
		return
	}
	b, ok := m.Memory().Read(ptr, n)
	if !ok {
		return
	}
	st.host.Log(ctx, level, string(b))
}

func hostCall(ctx context.Context, m api.Module, stack []uint64) {
	st := state(ctx)
	opPtr, opLen := uint32(stack[0]), uint32(stack[1])
	reqPtr, reqLen := uint32(stack[2]), uint32(stack[3])
	outPtr, outCap := uint32(stack[4]), uint32(stack[5])
	if st != nil {
		// A result the guest did not take is dropped: take returns only
		// this call's.
		st.pending = nil
	}
	result := func() []byte {
		if st == nil {
			return errorEnvelope(apierr.New(apierr.CodeUnavailable, "host functions are not available here"))
		}
		if opLen > maxOpName || reqLen > maxHostRequest {
			return errorEnvelope(apierr.New(apierr.CodeBadRequest, "host call too large"))
		}
		op, ok1 := m.Memory().Read(opPtr, opLen)
		req, ok2 := m.Memory().Read(reqPtr, reqLen)
		if !ok1 || !ok2 {
			return errorEnvelope(apierr.New(apierr.CodeBadRequest, "host call outside memory"))
		}
		out, err := st.host.Call(ctx, string(op), append([]byte(nil), req...))
		if err != nil {
			return errorEnvelope(err)
		}
		if len(out) > st.limits.MaxHostResult {
			return errorEnvelope(apierr.New(apierr.CodeScopeLimit, "host result of %d bytes is over the limit of %d", len(out), st.limits.MaxHostResult))
		}
		env := make([]byte, 0, len(out)+8)
		env = append(env, `{"ok":`...)
		if len(out) == 0 {
			out = []byte("null")
		}
		env = append(env, out...)
		return append(env, '}')
	}()
	if uint32(len(result)) > outCap {
		if st != nil {
			st.pending = result
		}
		stack[0] = api.EncodeI64(-int64(len(result)))
		return
	}
	if !m.Memory().Write(outPtr, result) {
		stack[0] = api.EncodeI64(-int64(len(result)))
		return
	}
	stack[0] = api.EncodeI64(int64(len(result)))
}

func hostTake(ctx context.Context, m api.Module, stack []uint64) {
	st := state(ctx)
	outPtr, outCap := uint32(stack[0]), uint32(stack[1])
	if st == nil || st.pending == nil || uint32(len(st.pending)) > outCap || !m.Memory().Write(outPtr, st.pending) {
		stack[0] = api.EncodeI64(-1)
		return
	}
	n := len(st.pending)
	st.pending = nil
	stack[0] = api.EncodeI64(int64(n))
}

func errorEnvelope(err error) []byte {
	ae := apierr.From(err)
	e := map[string]string{"code": string(ae.Code), "message": ae.Message}
	if ae.Field != "" {
		e["field"] = ae.Field
	}
	b, _ := json.Marshal(map[string]any{"error": e})
	return b
}
