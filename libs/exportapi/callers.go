package exportapi

import "github.com/gnome-platform/gnome/libs/contract"

// CallerOf gives the serving side the request's caller, so that it is
// replaced by the identity the caller's token proves before the handler
// runs (libs/bus, libs/svc Identity). Every request naming a caller has one.

func (r *Request) CallerOf() *contract.Caller    { return &r.Caller }
func (r *Get) CallerOf() *contract.Caller        { return &r.Caller }
func (r *List) CallerOf() *contract.Caller       { return &r.Caller }
func (r *Invalidate) CallerOf() *contract.Caller { return &r.Caller }
