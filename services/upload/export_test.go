package upload

// SetBeforeStore makes s call fn after a staged upload was checked and its
// bundle stored, before its version is recorded: a test holds a
// processing there.
func SetBeforeStore(s *Service, fn func(id string)) { s.runs.beforeStore = fn }

// SetAfterStore makes s call fn right after it recorded an upload's
// version, before the steps that follow (indexes, the event).
func SetAfterStore(s *Service, fn func(id string)) { s.runs.afterStore = fn }

// Running is how many processings of uploads s has under way.
func Running(s *Service) int {
	s.runs.mu.Lock()
	defer s.runs.mu.Unlock()
	return len(s.runs.m)
}

// SetAfterAccessList makes s call fn after it listed and read the keys of
// the data_grants bucket, before it acts on them.
func SetAfterAccessList(s *Service, fn func()) { s.afterAccessList = fn }
