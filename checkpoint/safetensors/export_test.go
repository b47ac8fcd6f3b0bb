package safetensors

// Mapped reports whether f reads its tensors from a memory mapping.
func Mapped(f *File) bool { return f.data != nil }
