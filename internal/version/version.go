// Package version says which herd build made a file: the module version
// and, where the build recorded it, the VCS revision.
package version

import (
	"runtime/debug"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// moduleVersion returns herd's module version ("devel" for a build from a
// working tree) and the VCS revision it was built from (12 hex digits,
// "-dirty" appended for uncommitted changes; "" when the build did not
// record one, as in tests).
func moduleVersion() (version, revision string) {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel", ""
	}
	version = strings.Trim(info.Main.Version, "()")
	if version == "" {
		version = "devel"
	}
	dirty := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(revision) > 12 {
		revision = revision[:12]
	}
	if revision != "" && dirty {
		revision += "-dirty"
	}
	return version, revision
}

// CreatedBy is the Parquet writer option that stores the application and
// this build in a file's created_by field, in the form the Parquet
// specification gives: "herd curate version devel (build 0123456789ab)".
func CreatedBy(application string) parquet.WriterOption {
	v, rev := moduleVersion()
	if rev == "" {
		rev = "unknown"
	}
	// parquet-go writes version and "(build …)" with no space between.
	return parquet.CreatedBy(application, v+" ", rev)
}
