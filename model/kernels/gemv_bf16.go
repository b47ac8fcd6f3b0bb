package kernels

import (
	"fmt"

	"github.com/herdml/herd/checkpoint/safetensors"
)

// WeightType is the element type a decoder holds its matrix-vector
// weights in.
type WeightType uint8

// The weight types of MatVec: F32 (the weights as they are) and BF16 (the
// top 16 bits of each F32, rounded to nearest even), which halves the
// bytes a memory-bound decoding step reads.
const (
	F32 WeightType = iota
	BF16
)

// String returns "f32" or "bf16".
func (t WeightType) String() string {
	switch t {
	case F32:
		return "f32"
	case BF16:
		return "bf16"
	}
	return fmt.Sprintf("WeightType(%d)", uint8(t))
}

// ParseWeightType parses "f32" or "bf16".
func ParseWeightType(s string) (WeightType, error) {
	switch s {
	case "f32":
		return F32, nil
	case "bf16":
		return BF16, nil
	}
	return F32, fmt.Errorf("weight type %q is not one of f32, bf16", s)
}

// bf16f widens a BF16 value to F32 (exact).
func bf16f(h uint16) float32 { return safetensors.BF16ToFloat32(h) }

// bf16Blocked reports whether ToBF16 interleaves the rows of W (out×in)
// by blocks of four: where in is a multiple of 16, each block of four
// rows is stored as chunks of 16 elements, the chunk of the first row,
// then of the second, third and fourth, then the next chunk of each, so
// that a block's kernel reads one contiguous stream (4·in values)
// instead of four rows at once; rows past the last whole block stay as
// they are. Decoding reads W from memory, not the caches, and the
// hardware prefetchers follow one long stream better than four short
// ones: on the 29M model's shapes the row-major BF16 rows (1 KB each)
// reached 15–19 GB/s where rows of 56 KB reached 31–32 (2-core EPYC).
func bf16Blocked(in int) bool { return in >= 16 && in%16 == 0 }

// ToBF16 rounds W (out×in, row-major) to BF16, to nearest even, into dst
// (out·in values) in the arrangement RunBF16 reads (see bf16Blocked), on
// be's workers. ct is scratch that holds dst and src while it runs; keep
// it with dst so that the call allocates nothing.
func ToBF16(be Backend, ct *BF16Conv, dst []uint16, src []float32, out, in int) {
	if len(src) < out*in || len(dst) < out*in {
		panic(fmt.Sprintf("kernels: ToBF16: %d×%d needs %d values; have dst %d, src %d", out, in, out*in, len(dst), len(src)))
	}
	*ct = BF16Conv{dst: dst[:out*in], src: src[:out*in], in: in}
	be.Parallel((out+3)/4, max(1, bf16ConvGrain/(4*max(in, 1))), ct)
	*ct = BF16Conv{}
}

// bf16ConvGrain is the fewest weights a worker of ToBF16 converts.
const bf16ConvGrain = 1 << 15

// BF16Conv is ToBF16's task: blocks [lo, hi) of four rows per call. The
// zero value is ready to use.
type BF16Conv struct {
	dst []uint16
	src []float32
	in  int
}

// Run implements Task.
func (t *BF16Conv) Run(lo, hi int) {
	in := t.in
	out := len(t.src) / max(in, 1)
	for b := lo; b < hi; b++ {
		r0, r1 := 4*b, min(4*b+4, out)
		dst, src := t.dst[r0*in:r1*in], t.src[r0*in:r1*in]
		if r1-r0 < 4 || !bf16Blocked(in) {
			for i, v := range src {
				dst[i] = safetensors.Float32ToBF16(v)
			}
			continue
		}
		for c := 0; c < in; c += 16 {
			blk := dst[4*c : 4*c+64]
			for j := range 4 {
				for k, v := range src[j*in+c : j*in+c+16] {
					blk[16*j+k] = safetensors.Float32ToBF16(v)
				}
			}
		}
	}
}

// RunBF16 is Run with W held as BF16 (see BF16), arranged by ToBF16 (see
// bf16Blocked): y = x·Wᵀ, or y += x·Wᵀ
// when accumulate, each weight widened exactly to F32 and the products
// summed in F32 in the order the pure-Go F32 kernel of the same tier
// sums them, so that the result equals Run's on the widened weights
// where Run uses that kernel. It reads half the bytes of Run, which bound
// the time of a decoding step.
func (mv *MatVec) RunBF16(be Backend, y, x []float32, w []uint16, n, in, out int, accumulate bool) {
	if n < 0 || in < 0 || out < 0 {
		panic(fmt.Sprintf("kernels: MatVec.RunBF16: negative size n=%d in=%d out=%d", n, in, out))
	}
	if len(x) < n*in || len(w) < out*in || len(y) < n*out {
		panic(fmt.Sprintf("kernels: MatVec.RunBF16: n=%d in=%d out=%d needs x, w, y of %d, %d, %d elements; have %d, %d, %d",
			n, in, out, n*in, out*in, n*out, len(x), len(w), len(y)))
	}
	if n == 0 || out == 0 {
		return
	}
	// The kernels find the arrangement of W from in (bf16Blocked), which
	// needs ldw = in.
	mv.t.mvArgs = mvArgs{y: y[:n*out], x: x[:n*in], wh: w[:out*in], ldy: out, ldx: in, ldw: in, n: n, in: in, acc: accumulate}
	mv.dispatch(be, matVecBF16Go, out, in, 2)
}

// matVecBF16Go is RunBF16's kernel: the SIMD one where the build and CPU
// have it, else the portable one.
func matVecBF16Go(a *mvArgs, lo, hi int) {
	if matVecBF16SIMD(a, lo, hi) {
		return
	}
	matVecBF16Portable(a, lo, hi)
}

// matVecBF16Portable is the scalar BF16 kernel: on rows interleaved by
// blocks (see bf16Blocked) matVecBF16PortableBlocked, else one weight row
// at a time (only small models have rows that are not a multiple of 16
// long). Both sum each output in matVecPortable's order: the products in
// element order, then y when accumulating.
func matVecBF16Portable(a *mvArgs, lo, hi int) {
	if bf16Blocked(a.in) {
		matVecBF16PortableBlocked(a, lo, hi)
		return
	}
	matVecBF16Rows(a, lo, hi)
}

// matVecBF16PortableBlocked is matVecBF16Portable on rows interleaved
// by blocks of four (see bf16Blocked): the same sums in the same order,
// each row's elements read from its place in the chunks.
func matVecBF16PortableBlocked(a *mvArgs, lo, hi int) {
	y, x, w, n, in, acc := a.y, a.x, a.wh, a.n, a.in, a.acc
	ldy, ldx := a.ldy, a.ldx
	r := lo
	for ; r+4 <= hi; r += 4 {
		wb := w[r*in : (r+4)*in]
		j := 0
		for ; j+2 <= n; j += 2 {
			xa := x[j*ldx : j*ldx+in]
			xb := x[(j+1)*ldx : (j+1)*ldx+in]
			var a0, a1, a2, a3, b0, b1, b2, b3 float32
			for c := 0; c < in; c += 16 {
				blk := wb[4*c : 4*c+64]
				for k := range 16 {
					u, v := xa[c+k], xb[c+k]
					p0, p1, p2, p3 := bf16f(blk[k]), bf16f(blk[16+k]), bf16f(blk[32+k]), bf16f(blk[48+k])
					a0 += u * p0
					a1 += u * p1
					a2 += u * p2
					a3 += u * p3
					b0 += v * p0
					b1 += v * p1
					b2 += v * p2
					b3 += v * p3
				}
			}
			store4(y[j*ldy+r:j*ldy+r+4], a0, a1, a2, a3, acc)
			store4(y[(j+1)*ldy+r:(j+1)*ldy+r+4], b0, b1, b2, b3, acc)
		}
		if j < n {
			xa := x[j*ldx : j*ldx+in]
			var a0, a1, a2, a3 float32
			for c := 0; c < in; c += 16 {
				blk := wb[4*c : 4*c+64]
				for k := range 16 {
					u := xa[c+k]
					a0 += u * bf16f(blk[k])
					a1 += u * bf16f(blk[16+k])
					a2 += u * bf16f(blk[32+k])
					a3 += u * bf16f(blk[48+k])
				}
			}
			store4(y[j*ldy+r:j*ldy+r+4], a0, a1, a2, a3, acc)
		}
	}
	matVecBF16Rows(a, r, hi)
}

// matVecBF16Rows computes outputs [lo, hi) one weight row at a time, on
// rows as they are (not interleaved): the rows past the last block of
// four, or every row where in is not a multiple of 16.
func matVecBF16Rows(a *mvArgs, lo, hi int) {
	y, x, w, n, in, acc := a.y, a.x, a.wh, a.n, a.in, a.acc
	ldy, ldx, ldw := a.ldy, a.ldx, a.ldw
	for r := lo; r < hi; r++ {
		wr := w[r*ldw : r*ldw+in]
		for j := range n {
			xr := x[j*ldx : j*ldx+in]
			var s float32
			for i, h := range wr {
				s += xr[i] * bf16f(h)
			}
			if acc {
				s += y[j*ldy+r]
			}
			y[j*ldy+r] = s
		}
	}
}
