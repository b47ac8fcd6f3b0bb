package recipes

// Doc returns the one-line documentation of a recipe key of tool (see
// toolList), for the external tests: dotted YAML names, with or without list indexes
// (stages.0.steps and stages.steps are the same key). The docs are the
// recipe structs' field comments, collected into docs_table.go.
func Doc(tool, key string) (string, bool) {
	d, ok := docTable(tool)[docKey(key)]
	return d, ok
}

// AllShipped and OwnerOf are allShipped and ownerOf, for the external
// tests.
var (
	AllShipped = allShipped
	OwnerOf    = ownerOf
)
