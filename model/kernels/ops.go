package kernels

// Ops are the fused passes of a Llama layer that are not matrix
// multiplications. Every Backend provides them, so a GPU backend can run a
// whole layer on the device.
//
// Matrices are row-major float32; "rows" is the number of tokens. Backward
// passes accumulate (+=) into weight gradients and into dx where noted,
// and overwrite every other output.
type Ops interface {
	// RMSNorm computes y = x·rstd·w per row of cols values, with
	// rstd = 1/√(mean(x²)+eps) saved per row.
	RMSNorm(x, w, y, rstd []float32, rows, cols int, eps float32)
	// RMSNormBackward accumulates dx += ∂L/∂x and dw += ∂L/∂w given dy.
	RMSNormBackward(x, w, rstd, dy, dx, dw []float32, rows, cols int)
	// SwiGLU computes h = silu(g)·u elementwise and, when sig is not nil,
	// keeps sigmoid(g) in sig for the backward pass.
	SwiGLU(g, u, h, sig []float32)
	// SwiGLUBackward computes dg and du from dh given sig = sigmoid(g).
	// dh may alias dg.
	SwiGLUBackward(g, u, sig, dh, dg, du []float32)
	// Rope rotates, in place, rows of heads×headDim values by the angles of
	// each row's position, in the Hugging Face rotate-half convention
	// (element i pairs with i+headDim/2). cos and sin hold headDim/2 values
	// per position. With inverse it applies the transpose, which is the
	// backward pass.
	Rope(x []float32, rows, heads, headDim int, pos []int32, cos, sin []float32, inverse bool)
	// CrossEntropy computes per row nll = logsumexp(logits) − logits[target]
	// (0 where target < 0) and saves the logsumexp in lse.
	CrossEntropy(logits []float32, rows, vocab int, targets []int32, nll, lse []float32)
	// CrossEntropyBackward writes dlogits = coef·(softmax − onehot(target))
	// per row (0 where coef is 0 or target < 0).
	CrossEntropyBackward(logits, lse, coef []float32, rows, vocab int, targets []int32, dlogits []float32)
	// Attention computes causal, document-masked, grouped-query attention
	// and keeps the probabilities for AttentionBackward.
	Attention(a *AttentionArgs)
	// AttentionBackward computes DQ, DK and DV from DOut.
	AttentionBackward(a *AttentionArgs)
}

// AttentionArgs describe one attention layer over a batch of B rows of T
// tokens. Q is [B·T, Heads·HeadDim], K and V are [B·T, KVHeads·HeadDim];
// query head h reads key/value head h/(Heads/KVHeads). Start[b·T+i] is the
// index within row b where token i's document begins: token i attends to
// tokens Start..i of its row (the causal Llama 3 document mask). P holds
// the probabilities [B, Heads, T, T]; only entries inside each query
// block's key range are meaningful. Block is the number of query rows
// multiplied together (0 = 32): each block only touches the keys it may
// see, which skips most of the masked triangle.
type AttentionArgs struct {
	B, T, Heads, KVHeads, HeadDim, Block int
	Start                                []int32
	Q, K, V, P, Out                      []float32
	// Backward only: DOut in, DQ, DK, DV out, DP scratch shaped like P.
	DOut, DQ, DK, DV, DP []float32
}

func (a *AttentionArgs) block() int {
	if a.Block > 0 {
		return a.Block
	}
	return 32
}
