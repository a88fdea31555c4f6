package export

import "time"

// now is the time the service records: BSON dates keep milliseconds.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }
