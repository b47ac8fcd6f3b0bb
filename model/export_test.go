package model

// This file exports internals to the external tests of package model
// (package model_test), which use the float64 reference of
// model/modeltest and so cannot be internal tests.

// SetAttnBlock sets the query rows per attention block of m, so that tests
// can force several uneven blocks per row.
func SetAttnBlock(m *Model, rows int) { m.attnBlock = rows }

// Argmax is the index of the first largest element of x, as greedy
// sampling picks it.
func Argmax(x []float32) int { return argmax(x) }

// SetDecodeGemm makes m's decoders (created afterwards) run every
// projection through the backend's Gemm instead of the matrix-vector fast
// path, so tests and benchmarks can compare the two.
func SetDecodeGemm(m *Model, on bool) { m.decodeGemm = on }
