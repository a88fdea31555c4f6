package actorsdk

// Secret is the value of the experiment's secret name, which its owner or
// an admin set through the platform's API (PUT
// /api/experiments/{slug}/secrets/{name}). A name that is not set is a
// *HostError with CodeNotFound; a value sealed with a key the platform no
// longer has, one with code "gone" (its owner must set it again).
//
// The value is read from the platform at each call, so a changed or
// deleted secret holds from the next call on. Keep it out of responses
// and log lines: the platform never shows it again, and cannot take it
// back from where the actor put it.
func Secret(name string) (string, error) {
	var res struct {
		Value string `json:"value"`
	}
	if err := Call("secret.get", struct {
		Name string `json:"name"`
	}{name}, &res); err != nil {
		return "", err
	}
	return res.Value, nil
}
