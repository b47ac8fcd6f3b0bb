package fp8

import (
	"fmt"

	"github.com/herdml/herd/model"
)

// matmulEmulator makes a model's feed-forward matmuls behave like the FP8
// matmuls of a W8A8 engine: the weights are already E4M3·scale (loaded by
// dequantizing), and Emulator quantizes each matmul input per token with
// the dynamic scale, so the products use exactly the values an FP8 kernel
// multiplies (accumulation stays float32, as FP8 tensor cores accumulate
// in higher precision). It implements model.ActivationQuantizer. Only the
// feed-forward inputs are emulated: a checkpoint that also quantizes the
// attention projections (llm-compressor's FP8-dynamic recipe) runs them
// with dequantized weights and unrounded inputs.
type matmulEmulator struct {
	gateUp, down []bool // per layer: input of gate/up, of down, is quantized
	ub           float32
}

// newMatmulEmulator returns the emulator of scheme s for cfg, or nil when s
// does not quantize activations (weight-only FP8 needs no emulation).
func newMatmulEmulator(cfg model.Config, s *Scheme) *matmulEmulator {
	if s == nil || !s.DynamicActivations {
		return nil
	}
	e := &matmulEmulator{gateUp: make([]bool, cfg.NumHiddenLayers), down: make([]bool, cfg.NumHiddenLayers), ub: s.ActivationScaleUB}
	for l := range cfg.NumHiddenLayers {
		e.gateUp[l] = s.Quantized(fmt.Sprintf("model.layers.%d.mlp.gate_proj", l))
		e.down[l] = s.Quantized(fmt.Sprintf("model.layers.%d.mlp.down_proj", l))
	}
	return e
}

// QuantizeFFNInput implements model.ActivationQuantizer.
func (e *matmulEmulator) QuantizeFFNInput(layer int, down bool, x []float32, rows, cols int) {
	q := e.gateUp
	if down {
		q = e.down
	}
	if layer < len(q) && q[layer] {
		quantizeTokens(x[:rows*cols], rows, cols, e.ub)
	}
}

// Emulate installs on m the activation emulation its configuration's
// quantization_config asks for and reports whether it did; a model
// without quantization_config, or with weight-only FP8, is left alone.
func Emulate(m *model.Model) (bool, error) {
	s, err := FromConfig(m.Config)
	if err != nil {
		return false, err
	}
	e := newMatmulEmulator(m.Config, s)
	if e == nil {
		return false, nil
	}
	m.ActivationQuantizer = e
	return true, nil
}
