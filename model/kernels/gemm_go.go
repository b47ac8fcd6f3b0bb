package kernels

import "sync"

// Cache blocking for the pure-Go GEMM (BLIS-style loop order). A kc×nc
// panel of op(B) is packed once per (jc, pc) step and reused across all row
// blocks; an mc×kc block of op(A) is packed per row block and stays in L2
// while the micro-kernel sweeps the B panel.
const (
	goKC = 256
	goMC = 144
	goNC = 1536
)

// microKernel computes one full mr×nr tile:
//
//	c[i*ldc+j] = alpha·Σ_p a[p*mr+i]·b[p*nr+j] + beta·c[i*ldc+j]
//
// over p in [0, kc), where a and b are packed panels. When beta is 0, c is
// not read (so NaN garbage in c is overwritten, as in BLAS).
type microKernel func(kc int, a, b []float32, c []float32, ldc int, alpha, beta float32)

// rowsKernel is a microKernel that reads the mr rows of A where they are
// stored, at a[i*lda+p], instead of from a packed panel. Rows of a
// row-major op(A) (A not transposed) are contiguous in p, so the
// broadcasts stream along them and A needs no packing: for the model's
// projections with 256 outputs, packing A cost a fifth of the GEMM.
type rowsKernel func(kc int, a []float32, lda int, b []float32, c []float32, ldc int, alpha, beta float32)

// A colsKernel is a rowsKernel for a transposed op(A), read in place at
// a[p*lda+i]: the mr values of one step are adjacent, as in a packed
// panel, and the steps lda apart. The weight gradients (dyᵀ·x) and
// attention's Pᵀ·dO and dSᵀ·Q multiply such an A; packing it cost about
// a tenth of a training step.
type colsKernel = rowsKernel

// goGemm is a packed, register-tiled single-threaded SGEMM written in Go.
// Its packing buffers come from a sync.Pool so that concurrent callers on
// disjoint outputs need no locking and steady-state calls allocate nothing.
type goGemm struct {
	mr, nr     int
	kc, mc, nc int // cache blocks; mc and nc are multiples of mr and nr
	kernel     microKernel
	rows       rowsKernel // nil: always pack A
	cols       colsKernel // nil: pack a transposed A
	bufs       sync.Pool  // *gemmBufs
}

type gemmBufs struct {
	a, b []float32
	tile []float32
}

func newGoGemm(mr, nr int, kernel microKernel, rows rowsKernel, cols colsKernel) *goGemm {
	g := &goGemm{mr: mr, nr: nr, kc: goKC, mc: roundUp(goMC, mr), nc: roundUp(goNC, nr), kernel: kernel, rows: rows, cols: cols}
	g.bufs.New = func() any {
		return &gemmBufs{
			a:    make([]float32, g.mc*g.kc),
			b:    make([]float32, g.nc*g.kc),
			tile: make([]float32, mr*nr),
		}
	}
	return g
}

func roundUp(x, m int) int { return (x + m - 1) / m * m }

// gemm computes C = alpha·op(A)·op(B) + beta·C on the calling goroutine.
// Arguments must already be validated.
func (g *goGemm) gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	bufs := g.bufs.Get().(*gemmBufs)
	nr := g.nr
	mcMax, ncMax, kcMax := g.mc, g.nc, g.kc
	for jc := 0; jc < n; jc += ncMax {
		nc := min(ncMax, n-jc)
		for pc := 0; pc < k; pc += kcMax {
			kc := min(kcMax, k-pc)
			bet := beta
			if pc > 0 {
				bet = 1
			}
			packPanels(bufs.b, !transB, b, ldb, jc, nc, pc, kc, nr)
			for ic := 0; ic < m; ic += mcMax {
				mc := min(mcMax, m-ic)
				g.macroKernel(g.blockA(bufs, transA, a, lda, ic, mc, pc, kc), bufs.b, mc, nc, kc, alpha, bet, c[ic*ldc+jc:], ldc)
			}
		}
	}
	g.bufs.Put(bufs)
}

// aBlock is an mc×kc block of op(A) ready for the macro-kernel: packed
// into panels (ap), or, where the build has a rowsKernel (colsKernel for
// a transposed A), read in place (raw, its rows — columns when trans — lda
// apart) with only a partial last tile packed into ap. tile is mr×nr
// scratch for edge tiles.
type aBlock struct {
	ap, raw, tile []float32
	lda           int
	trans         bool
}

// blockA prepares the mc×kc block of op(A) at (i0, p0), packing it into
// bufs.a unless it can be read in place.
func (g *goGemm) blockA(bufs *gemmBufs, transA bool, a []float32, lda, i0, mc, p0, kc int) aBlock {
	if g.rows == nil || transA && g.cols == nil {
		packPanels(bufs.a, transA, a, lda, i0, mc, p0, kc, g.mr)
		return aBlock{ap: bufs.a, tile: bufs.tile}
	}
	full := mc / g.mr * g.mr
	if full < mc {
		packPanels(bufs.a[full*kc:], transA, a, lda, i0+full, mc-full, p0, kc, g.mr)
	}
	if transA {
		return aBlock{ap: bufs.a, raw: a[p0*lda+i0:], lda: lda, trans: true, tile: bufs.tile}
	}
	return aBlock{ap: bufs.a, raw: a[i0*lda+p0:], lda: lda, tile: bufs.tile}
}

// macroKernel sweeps the mc×kc block of A against the packed kc×nc panel
// of B in bp, updating the mc×nc block of C that starts at c[0].
func (g *goGemm) macroKernel(ab aBlock, bp []float32, mc, nc, kc int, alpha, beta float32, c []float32, ldc int) {
	mr, nr := g.mr, g.nr
	ap, tile := ab.ap, ab.tile
	for jr := 0; jr < nc; jr += nr {
		nn := min(nr, nc-jr)
		bpanel := bp[jr*kc : jr*kc+nr*kc]
		for ir := 0; ir < mc; ir += mr {
			mm := min(mr, mc-ir)
			if ab.raw != nil && mm == mr {
				// A read in place.
				kern, raw := g.cols, ab.raw[ir:]
				if !ab.trans {
					kern, raw = g.rows, ab.raw[ir*ab.lda:]
				}
				if nn == nr {
					kern(kc, raw, ab.lda, bpanel, c[ir*ldc+jr:], ldc, alpha, beta)
					continue
				}
				kern(kc, raw, ab.lda, bpanel, tile, nr, alpha, 0)
			} else {
				apanel := ap[ir*kc : ir*kc+mr*kc]
				if mm == mr && nn == nr {
					g.kernel(kc, apanel, bpanel, c[ir*ldc+jr:], ldc, alpha, beta)
					continue
				}
				// Edge tile: compute alpha·AB into a scratch tile, then
				// merge the valid part.
				g.kernel(kc, apanel, bpanel, tile, nr, alpha, 0)
			}
			for i := 0; i < mm; i++ {
				crow := c[(ir+i)*ldc+jr : (ir+i)*ldc+jr+nn]
				trow := tile[i*nr : i*nr+nn]
				if beta == 0 {
					copy(crow, trow)
				} else {
					for j := range crow {
						crow[j] = trow[j] + beta*crow[j]
					}
				}
			}
		}
	}
}

// parGemm is the pure-Go GEMM spread over a pool's workers. The serial
// algorithm split by blocks of C would have every block pack all of op(B)
// again (the whole weight matrix, for a row block of a projection); here
// the workers first pack each kc×nc panel of op(B) together, once, into
// one shared buffer, and then sweep it with blocks of A they pack
// themselves. A parGemm belongs to one CPU and runs under its pool's lock.
type parGemm struct {
	g  *goGemm
	bp []float32 // the shared packed panel of op(B), g.nc×g.kc, made on first use

	// The call in progress.
	pack           bool // phase: pack B panels, or compute blocks of C
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a, b, c        []float32
	lda, ldb, ldc  int
	jc, nc, pc, kc int
	colChunk       int // columns of C per compute unit, a multiple of nr
	colChunks      int
}

// run computes C = alpha·op(A)·op(B) + beta·C on p, whose lock the caller
// holds. Arguments must already be validated, with m, n, k > 0 and alpha ≠ 0.
func (t *parGemm) run(p *pool, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	g := t.g
	if t.bp == nil {
		t.bp = make([]float32, g.nc*g.kc)
	}
	t.transA, t.transB, t.m, t.n, t.k = transA, transB, m, n, k
	t.alpha, t.a, t.lda, t.b, t.ldb, t.c, t.ldc = alpha, a, lda, b, ldb, c, ldc
	rowBlocks := (m + g.mc - 1) / g.mc
	for jc := 0; jc < n; jc += g.nc {
		nc := min(g.nc, n-jc)
		// Enough units for about four per worker: split the columns when
		// there are few row blocks (A is then packed once per unit).
		t.colChunk = nc
		if want := 4 * p.workers; rowBlocks < want {
			t.colChunk = max(g.nr, roundUp((nc*rowBlocks+want-1)/want, g.nr))
		}
		t.colChunks = (nc + t.colChunk - 1) / t.colChunk
		for pc := 0; pc < k; pc += g.kc {
			t.jc, t.nc, t.pc, t.kc = jc, nc, pc, min(g.kc, k-pc)
			t.beta = beta
			if pc > 0 {
				t.beta = 1
			}
			panels := (nc + g.nr - 1) / g.nr
			t.pack = true
			p.runLocked(panels, 1, panels, t)
			t.pack = false
			units := rowBlocks * t.colChunks
			p.runLocked(units, 1, units, t)
		}
	}
	t.a, t.b, t.c = nil, nil, nil
}

// Run implements Task: panels [lo, hi) of op(B) in the packing phase,
// units [lo, hi) of C (row block × column chunk) in the compute phase.
func (t *parGemm) Run(lo, hi int) {
	g := t.g
	kc := t.kc
	if t.pack {
		for j := lo * g.nr; j < min(hi*g.nr, t.nc); j += g.nr {
			packPanels(t.bp[j*kc:], !t.transB, t.b, t.ldb, t.jc+j, min(g.nr, t.nc-j), t.pc, kc, g.nr)
		}
		return
	}
	bufs := g.bufs.Get().(*gemmBufs)
	for u := lo; u < hi; u++ {
		ic := u / t.colChunks * g.mc
		j0 := u % t.colChunks * t.colChunk
		mc, nc := min(g.mc, t.m-ic), min(t.colChunk, t.nc-j0)
		g.macroKernel(g.blockA(bufs, t.transA, t.a, t.lda, ic, mc, t.pc, kc), t.bp[j0*kc:], mc, nc, kc, t.alpha, t.beta, t.c[ic*t.ldc+t.jc+j0:], t.ldc)
	}
	g.bufs.Put(bufs)
}

// packPanels copies an mc×kc block of a matrix X into dst as ceil(mc/w)
// panels, each kc steps of w values, padding past mc with zeros. The block
// starts at X[i0][p0]; X[i][p] is src[p*ld+i] when iContig is set and
// src[i*ld+p] otherwise. op(A) is packed with i = row (iContig = transA),
// op(B) with i = column (iContig = !transB).
func packPanels(dst []float32, iContig bool, src []float32, ld, i0, mc, p0, kc, w int) {
	for ir := 0; ir < mc; ir += w {
		mm := min(w, mc-ir)
		panel := dst[ir*kc : ir*kc+w*kc]
		if iContig {
			// Each step copies a contiguous run: as one fixed-size move for
			// the kernels' widths (a copy() of a few floats costs a call to
			// memmove, which dominated the packing of transposed A).
			for p := 0; p < kc; p++ {
				s := src[(p0+p)*ld+i0+ir:]
				d := panel[p*w : p*w+w]
				switch {
				case mm == 32 && w == 32:
					*(*[32]float32)(d) = *(*[32]float32)(s)
				case mm == 16 && w == 16:
					*(*[16]float32)(d) = *(*[16]float32)(s)
				case mm == 4 && w == 4:
					*(*[4]float32)(d) = *(*[4]float32)(s)
				default:
					copy(d[:mm], s[:mm])
					clear(d[mm:])
				}
			}
			continue
		}
		// Gather four i at a time: four source rows read in step, four
		// adjacent floats written per step.
		i := 0
		for ; i+4 <= mm; i += 4 {
			r := (i0 + ir + i) * ld
			s0 := src[r+p0 : r+p0+kc]
			s1 := src[r+ld+p0 : r+ld+p0+kc]
			s2 := src[r+2*ld+p0 : r+2*ld+p0+kc]
			s3 := src[r+3*ld+p0 : r+3*ld+p0+kc]
			for p := range s0 {
				d := (*[4]float32)(panel[p*w+i:])
				d[0], d[1], d[2], d[3] = s0[p], s1[p], s2[p], s3[p]
			}
		}
		for ; i < mm; i++ {
			s := src[(i0+ir+i)*ld+p0 : (i0+ir+i)*ld+p0+kc]
			for p, v := range s {
				panel[p*w+i] = v
			}
		}
		for i := mm; i < w; i++ {
			for p := 0; p < kc; p++ {
				panel[p*w+i] = 0
			}
		}
	}
}

// scaleC sets C = beta·C, writing zeros without reading C when beta is 0.
func scaleC(m, n int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		switch beta {
		case 0:
			clear(row)
		case 1:
		default:
			for j := range row {
				row[j] *= beta
			}
		}
	}
}

// Portable micro-kernel geometry: 3 rows × 2 columns, unrolled twice in k.
// The Go compiler keeps scalar floats in 15 registers and schedules all
// loads of an iteration first, so larger tiles (4×3, 4×4, 2×6, …) spill;
// this one measured fastest (about 9 GFLOP/s per core on Zen 4, against
// 4–5 for the larger tiles).
const (
	portableMR = 3
	portableNR = 2
)

// kernelPortable is the scalar 3×2 micro-kernel (see microKernel).
func kernelPortable(kc int, a, b []float32, c []float32, ldc int, alpha, beta float32) {
	var acc [portableMR * portableNR]float32
	portableLoop(kc, a, b, &acc)
	for i := range portableMR {
		row := c[i*ldc : i*ldc+2]
		if beta == 0 {
			row[0], row[1] = alpha*acc[2*i], alpha*acc[2*i+1]
		} else {
			row[0] = alpha*acc[2*i] + beta*row[0]
			row[1] = alpha*acc[2*i+1] + beta*row[1]
		}
	}
}

// portableLoop accumulates the kc rank-1 updates of a 3×2 tile into acc.
// It takes no float arguments so that alpha and beta do not occupy
// registers the loop needs.
//
//go:noinline
func portableLoop(kc int, a, b []float32, acc *[portableMR * portableNR]float32) {
	var c00, c01, c10, c11, c20, c21 float32
	a = a[:kc*portableMR]
	b = b[:kc*portableNR]
	for len(a) >= 2*portableMR && len(b) >= 2*portableNR {
		a0, a1, a2 := a[0], a[1], a[2]
		b0, b1 := b[0], b[1]
		c00 += a0 * b0
		c01 += a0 * b1
		c10 += a1 * b0
		c11 += a1 * b1
		c20 += a2 * b0
		c21 += a2 * b1
		a0, a1, a2 = a[3], a[4], a[5]
		b0, b1 = b[2], b[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c10 += a1 * b0
		c11 += a1 * b1
		c20 += a2 * b0
		c21 += a2 * b1
		a = a[2*portableMR:]
		b = b[2*portableNR:]
	}
	if len(a) >= portableMR && len(b) >= portableNR { // odd kc
		a0, a1, a2 := a[0], a[1], a[2]
		b0, b1 := b[0], b[1]
		c00 += a0 * b0
		c01 += a0 * b1
		c10 += a1 * b0
		c11 += a1 * b1
		c20 += a2 * b0
		c21 += a2 * b1
	}
	*acc = [...]float32{c00, c01, c10, c11, c20, c21}
}
