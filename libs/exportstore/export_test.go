package exportstore

// ParseEndpoint is parseEndpoint, for the tests.
var ParseEndpoint = parseEndpoint
