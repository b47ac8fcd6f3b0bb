package tokens

// ParseManifest exposes parseManifest to the external tests.
var ParseManifest = parseManifest
