package actorsdk

// KVStore is the experiment's key-value store: keys of 1 to 128 characters
// from A-Z a-z 0-9 _ . = -, values of at most 64 KiB. No other experiment
// sees it.
type KVStore struct{}

// KV is the experiment's key-value store.
func KV() KVStore { return KVStore{} }

// Get returns key's value and revision; revision 0 (and a nil value) when
// the key is not set.
func (KVStore) Get(key string) (value []byte, revision uint64, err error) {
	var res struct {
		Value    []byte `json:"value"`
		Revision uint64 `json:"revision"`
	}
	err = Call("kv.get", struct {
		Key string `json:"key"`
	}{key}, &res)
	return res.Value, res.Revision, err
}

// Put sets key to value and returns the new revision.
func (KVStore) Put(key string, value []byte) (revision uint64, err error) {
	if value == nil {
		value = []byte{}
	}
	var res struct {
		Revision uint64 `json:"revision"`
	}
	err = Call("kv.put", struct {
		Key   string `json:"key"`
		Value []byte `json:"value"`
	}{key, value}, &res)
	return res.Revision, err
}

// Delete removes key; removing a key that is not set is not an error.
func (KVStore) Delete(key string) error {
	return Call("kv.delete", struct {
		Key string `json:"key"`
	}{key}, nil)
}
