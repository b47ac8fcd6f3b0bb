package optim

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
)

func tinyLayout() *model.Layout {
	c := model.Config{VocabSize: 10, HiddenSize: 8, IntermediateSize: 12, NumHiddenLayers: 1,
		NumAttentionHeads: 2, MaxPositionEmbeddings: 16}
	c.Normalize()
	return model.NewLayout(c)
}

func randomize(p *model.Params, rng *rand.Rand, scale float64) {
	for i := range p.Data {
		p.Data[i] = float32(rng.NormFloat64() * scale)
	}
}

// ref64 is an independent float64 AdamW written from the paper's formulas
// (Loshchilov & Hutter's decoupled decay, Kingma & Ba's bias correction).
type ref64 struct {
	p, m, v         []float64
	mAbs            []float64 // the moment of |g|: the scale of m's rounding error
	b1, b2, eps, wd float64
	decay           []bool // per element
	t               int
}

func (r *ref64) step(g []float32, lr float64) {
	r.t++
	bc1 := 1 - math.Pow(r.b1, float64(r.t))
	bc2 := 1 - math.Pow(r.b2, float64(r.t))
	for i := range r.p {
		gi := float64(g[i])
		if r.decay[i] {
			r.p[i] -= lr * r.wd * r.p[i]
		}
		r.m[i] = r.b1*r.m[i] + (1-r.b1)*gi
		r.mAbs[i] = r.b1*r.mAbs[i] + (1-r.b1)*math.Abs(gi)
		r.v[i] = r.b2*r.v[i] + (1-r.b2)*gi*gi
		mhat, vhat := r.m[i]/bc1, r.v[i]/bc2
		r.p[i] -= lr * mhat / (math.Sqrt(vhat) + r.eps)
	}
}

func TestAdamWAgainstFloat64(t *testing.T) {
	l := tinyLayout()
	cpu := kernels.NewCPU(2)
	defer cpu.Close()
	noEmbed := make([]bool, len(l.Tensors)) // decay 2-D weights but the embeddings
	for i, ti := range l.Tensors {
		noEmbed[i] = len(ti.Shape) == 2 && ti.Name != "model.embed_tokens.weight"
	}
	tests := []struct {
		name    string
		cfg     AdamWConfig
		backend kernels.Backend
	}{
		{"defaults", DefaultAdamWConfig(), nil},
		{"strong decay", AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.5}, nil},
		{"custom mask", AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.5, Decay: noEmbed}, nil},
		{"small beta1 (lerp's other branch)", AdamWConfig{Beta1: 0.3, Beta2: 0.9, Eps: 1e-6, WeightDecay: 0.2}, nil},
		{"serial backend", DefaultAdamWConfig(), kernels.NewSerial()},
		{"cpu backend", AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.3}, cpu},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			p, g := model.NewParams(l), model.NewParams(l)
			randomize(p, rng, 0.5)
			o, err := NewAdamW(l, tt.cfg, tt.backend)
			if err != nil {
				t.Fatal(err)
			}
			mask := tt.cfg.Decay
			if mask == nil {
				mask = l.DecayMask()
			}
			r := &ref64{b1: tt.cfg.Beta1, b2: tt.cfg.Beta2, eps: tt.cfg.Eps, wd: tt.cfg.WeightDecay,
				p: make([]float64, l.Total), m: make([]float64, l.Total), mAbs: make([]float64, l.Total), v: make([]float64, l.Total), decay: make([]bool, l.Total)}
			for i, ti := range l.Tensors {
				for j := ti.Offset; j < ti.Offset+ti.Size; j++ {
					r.p[j] = float64(p.Data[j])
					r.decay[j] = mask[i]
				}
			}
			sched := WarmupCosine{Peak: 1e-2, Min: 1e-3, Warmup: 2, Total: 8}
			lrSum := 0.0
			for step := range 8 {
				randomize(g, rng, math.Pow(10, float64(step%3-2)))
				g.Data[3] = 0 // exercise a zero gradient
				lr := sched.LR(step)
				if err := o.Update(p, g, lr); err != nil {
					t.Fatal(err)
				}
				r.step(g.Data, lr)
				lrSum += lr
				if o.Step != step+1 {
					t.Fatalf("Step = %d after %d updates", o.Step, step+1)
				}
				for i := range r.p {
					if d := math.Abs(float64(p.Data[i]) - r.p[i]); d > 1e-6*math.Abs(r.p[i])+1e-4*lrSum {
						t.Fatalf("step %d elem %d: p = %.9g, float64 reference %.9g", step, i, p.Data[i], r.p[i])
					}
					if d := math.Abs(float64(o.M.Data[i]) - r.m[i]); d > 1e-6*r.mAbs[i] {
						t.Fatalf("step %d elem %d: m = %g, want %g", step, i, o.M.Data[i], r.m[i])
					}
					if d := math.Abs(float64(o.V.Data[i]) - r.v[i]); d > 1e-5*r.v[i]+1e-20 {
						t.Fatalf("step %d elem %d: v = %g, want %g", step, i, o.V.Data[i], r.v[i])
					}
				}
			}
		})
	}
}

// TestAdamWFirstStep checks the bias correction directly: from zero
// moments the first update is −lr·g/(|g|+ε) ≈ −lr·sign(g), whatever the
// betas, and decay scales exactly the masked tensors.
func TestAdamWFirstStep(t *testing.T) {
	l := tinyLayout()
	cfg := AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}
	o, err := NewAdamW(l, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, g := model.NewParams(l), model.NewParams(l)
	for i := range p.Data {
		p.Data[i] = 1
		g.Data[i] = float32(i%5) - 2 // -2..2, including 0
	}
	const lr = 0.01
	if err := o.Update(p, g, lr); err != nil {
		t.Fatal(err)
	}
	mask := l.DecayMask()
	for i, ti := range l.Tensors {
		for j := ti.Offset; j < ti.Offset+ti.Size; j++ {
			want := 1.0
			if mask[i] {
				want -= lr * 0.1
			}
			if g.Data[j] != 0 {
				want -= lr * math.Copysign(1, float64(g.Data[j]))
			}
			if math.Abs(float64(p.Data[j])-want) > 1e-6 {
				t.Fatalf("%s[%d]: %v, want %v", ti.Name, j-ti.Offset, p.Data[j], want)
			}
		}
	}
}

// TestAdamWResume splits a run in two with SetState in between; the
// result must be bit-identical to the uninterrupted run.
func TestAdamWResume(t *testing.T) {
	l := tinyLayout()
	grads := make([]*model.Params, 6)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range grads {
		grads[i] = model.NewParams(l)
		randomize(grads[i], rng, 1e-2)
	}
	start := model.NewParams(l)
	randomize(start, rng, 0.1)
	run := func(o *AdamW, p *model.Params, from, to int) {
		for s := from; s < to; s++ {
			if err := o.Update(p, grads[s], 1e-3*float64(s+1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	a, _ := NewAdamW(l, DefaultAdamWConfig(), nil)
	pa := &model.Params{Layout: l, Data: slices.Clone(start.Data)}
	run(a, pa, 0, 6)

	b, _ := NewAdamW(l, DefaultAdamWConfig(), nil)
	pb := &model.Params{Layout: l, Data: slices.Clone(start.Data)}
	run(b, pb, 0, 3)
	m := &model.Params{Layout: l, Data: slices.Clone(b.M.Data)}
	v := &model.Params{Layout: l, Data: slices.Clone(b.V.Data)}
	c, _ := NewAdamW(l, DefaultAdamWConfig(), nil)
	if err := c.SetState(b.Step, m, v); err != nil {
		t.Fatal(err)
	}
	run(c, pb, 3, 6)
	for i := range pa.Data {
		if math.Float32bits(pa.Data[i]) != math.Float32bits(pb.Data[i]) {
			t.Fatalf("resumed run differs at %d: %g vs %g", i, pb.Data[i], pa.Data[i])
		}
	}
	if err := c.SetState(-1, m, v); err == nil {
		t.Error("negative step accepted")
	}
	if err := c.SetState(1, m, model.NewParams(model.NewLayout(model.Config{VocabSize: 1, HiddenSize: 2}))); err == nil {
		t.Error("mismatched moment accepted")
	}
}

func TestAdamWNoAlloc(t *testing.T) {
	l := tinyLayout()
	cpu := kernels.NewCPU(2)
	defer cpu.Close()
	for _, b := range []kernels.Backend{nil, kernels.NewSerial(), cpu} {
		o, _ := NewAdamW(l, DefaultAdamWConfig(), b)
		p, g := model.NewParams(l), model.NewParams(l)
		if n := testing.AllocsPerRun(20, func() { o.Update(p, g, 1e-3) }); n != 0 {
			t.Errorf("backend %v: %v allocations per Update", b, n)
		}
	}
}

func TestAdamWErrors(t *testing.T) {
	l := tinyLayout()
	for _, cfg := range []AdamWConfig{
		{Beta1: 1, Beta2: 0.9},
		{Beta1: 0.9, Beta2: -0.1},
		{Beta1: 0.9, Beta2: 0.9, Eps: math.NaN()},
		{Beta1: 0.9, Beta2: 0.9, WeightDecay: -1},
		{Beta1: 0.9, Beta2: 0.9, Decay: []bool{true}},
	} {
		if _, err := NewAdamW(l, cfg, nil); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
	o, _ := NewAdamW(l, DefaultAdamWConfig(), nil)
	p := model.NewParams(l)
	if err := o.Update(p, &model.Params{Layout: l, Data: make([]float32, 3)}, 1e-3); err == nil || !strings.Contains(err.Error(), "differ in size") {
		t.Errorf("short gradient: %v", err)
	}
	if err := o.Update(p, p, math.NaN()); err == nil {
		t.Error("NaN learning rate accepted")
	}
	if o.Step != 0 {
		t.Errorf("failed updates advanced Step to %d", o.Step)
	}
}

func TestSchedules(t *testing.T) {
	cos := WarmupCosine{Peak: 1e-3, Min: 1e-4, Warmup: 10, Total: 110}
	lin := WarmupLinear{Peak: 1, Warmup: 10, Total: 20}
	tests := []struct {
		name string
		s    Schedule
		step int
		want float64
	}{
		{"cosine first", cos, 0, 1e-4},
		{"cosine mid-warmup", cos, 4, 5e-4},
		{"cosine warmup end", cos, 9, 1e-3},
		{"cosine decay start", cos, 10, 1e-3},
		{"cosine quarter", cos, 35, 1e-4 + 9e-4*0.5*(1+math.Sqrt2/2)},
		{"cosine midpoint", cos, 60, 5.5e-4},
		{"cosine end", cos, 110, 1e-4},
		{"cosine floor", cos, 5000, 1e-4},
		{"linear warmup", lin, 4, 0.5},
		{"linear peak", lin, 10, 1},
		{"linear midpoint", lin, 15, 0.5},
		{"linear last", lin, 19, 0.1},
		{"linear end", lin, 20, 0},
		{"linear after", lin, 30, 0},
		{"linear no warmup", WarmupLinear{Peak: 2, Total: 100}, 0, 2},
		{"constant warmup", Constant{Peak: 2, Warmup: 4}, 1, 1},
		{"constant after", Constant{Peak: 2, Warmup: 4}, 3, 2},
		{"constant none", Constant{Peak: 2}, 0, 2},
		{"wsd warmup", WSD{Peak: 1, Min: 0.1, Warmup: 10, Decay: 20, Total: 100}, 0, 0.1},
		{"wsd stable", WSD{Peak: 1, Min: 0.1, Warmup: 10, Decay: 20, Total: 100}, 50, 1},
		{"wsd decay start", WSD{Peak: 1, Min: 0.1, Warmup: 10, Decay: 20, Total: 100}, 80, 1},
		{"wsd decay mid", WSD{Peak: 1, Min: 0.1, Warmup: 10, Decay: 20, Total: 100}, 90, 0.55},
		{"wsd end", WSD{Peak: 1, Min: 0.1, Warmup: 10, Decay: 20, Total: 100}, 100, 0.1},
		{"wsd after", WSD{Peak: 1, Min: 0.1, Warmup: 10, Decay: 20, Total: 100}, 1000, 0.1},
	}
	for _, tt := range tests {
		if got := tt.s.LR(tt.step); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("%s: LR(%d) = %.15g, want %.15g", tt.name, tt.step, got, tt.want)
		}
	}
	// Cosine decreases monotonically after warmup.
	for s := 10; s < 120; s++ {
		if cos.LR(s+1) > cos.LR(s) {
			t.Fatalf("cosine increases at %d", s)
		}
	}
	type validator interface{ Validate() error }
	for _, bad := range []validator{
		WarmupCosine{Peak: 1, Min: 2, Total: 10},
		WarmupCosine{Peak: 1, Warmup: 20, Total: 10},
		WarmupLinear{Peak: math.Inf(1), Total: 10},
		Constant{Peak: 1, Warmup: -1},
		WSD{Peak: 1, Warmup: 10, Decay: 95, Total: 100},
	} {
		if bad.Validate() == nil {
			t.Errorf("%+v validated", bad)
		}
	}
	for _, good := range []validator{cos, lin, Constant{Peak: 1}, WSD{Peak: 1, Min: 0.1, Warmup: 10, Decay: 20, Total: 100}} {
		if err := good.Validate(); err != nil {
			t.Errorf("%+v: %v", good, err)
		}
	}
}

func TestClipGradNorm(t *testing.T) {
	l := tinyLayout()
	g := model.NewParams(l)
	g.Data[0], g.Data[len(g.Data)-1] = 3, -4
	if n := GradNorm(g); n != 5 {
		t.Fatalf("norm %v, want 5", n)
	}
	if n := ClipGradNorm(g, 10); n != 5 || g.Data[0] != 3 {
		t.Errorf("no-op clip: %v %v", n, g.Data[0])
	}
	if n := ClipGradNorm(g, 1); n != 5 {
		t.Errorf("pre-clip norm %v", n)
	}
	if after := GradNorm(g); math.Abs(after-1) > 1e-6 {
		t.Errorf("norm after clipping %v, want 1", after)
	}
	if math.Abs(float64(g.Data[0])-0.6) > 1e-6 || math.Abs(float64(g.Data[len(g.Data)-1])+0.8) > 1e-6 {
		t.Errorf("direction changed: %v %v", g.Data[0], g.Data[len(g.Data)-1])
	}
	// float32 squares would overflow; float64 accumulation does not.
	big := model.NewParams(l)
	for i := range big.Data {
		big.Data[i] = 1e30
	}
	want := float64(float32(1e30)) * math.Sqrt(float64(len(big.Data)))
	if n := GradNorm(big); math.Abs(n-want) > 1e-12*want {
		t.Errorf("large norm %g, want %g", n, want)
	}
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(-1))} {
		h := model.NewParams(l)
		h.Data[1], h.Data[2] = bad, 7
		n := ClipGradNorm(h, 1)
		if !math.IsNaN(n) && !math.IsInf(n, 1) {
			t.Errorf("non-finite gradient gave norm %v", n)
		}
		if h.Data[2] != 7 {
			t.Errorf("non-finite norm still scaled the gradients")
		}
	}
}

// benchLayout is a 3.3M-parameter Llama layout (tied embeddings).
func benchLayout() *model.Layout {
	c := model.Config{VocabSize: 2048, HiddenSize: 256, IntermediateSize: 640, NumHiddenLayers: 4,
		NumAttentionHeads: 8, NumKeyValueHeads: 4, MaxPositionEmbeddings: 256, TieWordEmbeddings: true}
	c.Normalize()
	return model.NewLayout(c)
}

// BenchmarkAdamW measures one update; GB/s counts the 28 bytes per
// parameter moved (read p, g, m, v; write p, m, v).
func BenchmarkAdamW(b *testing.B) {
	l := benchLayout()
	cpu := kernels.NewCPU(0)
	defer cpu.Close()
	for _, bc := range []struct {
		name    string
		backend kernels.Backend
	}{{"serial", nil}, {"cpu", cpu}} {
		b.Run(bc.name, func(b *testing.B) {
			o, _ := NewAdamW(l, DefaultAdamWConfig(), bc.backend)
			p, g := model.NewParams(l), model.NewParams(l)
			rng := rand.New(rand.NewPCG(1, 1))
			randomize(p, rng, 0.02)
			randomize(g, rng, 1e-3)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				o.Update(p, g, 1e-4)
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(float64(l.Total)*28/sec/1e9, "GB/s")
			b.ReportMetric(float64(l.Total)/1e6, "Mparams")
		})
	}
}

func BenchmarkClipGradNorm(b *testing.B) {
	l := benchLayout()
	g := model.NewParams(l)
	randomize(g, rand.New(rand.NewPCG(1, 1)), 1e-3)
	for b.Loop() {
		ClipGradNorm(g, 1e9)
	}
	b.ReportMetric(float64(l.Total)*4/(b.Elapsed().Seconds()/float64(b.N))/1e9, "GB/s")
}
