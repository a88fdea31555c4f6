package uploadapi

// CallerOf gives the serving side the request's caller, so that it is
// replaced by the identity the caller's token proves before the handler
// runs (libs/bus, libs/svc Identity). Every request naming a caller has one.

func (r *ProcessUpload) CallerOf() *Caller { return &r.Caller }
func (r *Update) CallerOf() *Caller        { return &r.Caller }
func (r *Delete) CallerOf() *Caller        { return &r.Caller }
func (r *GrantsQuery) CallerOf() *Caller   { return &r.Caller }
func (r *GrantRequest) CallerOf() *Caller  { return &r.Caller }
func (r *RevokeRequest) CallerOf() *Caller { return &r.Caller }
