package cpu_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/omniflow-go/omniflow/device/cpu"
)

// One decode step of a grouped-query attention layer: append the new key
// and value to the layer's cache, then attend from the new query to
// everything cached.
func ExampleKVCache() {
	const batch, qHeads, kvHeads, headDim, maxLen = 1, 4, 2, 8, 16
	cache := cpu.NewKVCache(batch, kvHeads, maxLen, headDim)
	for step := range 3 {
		q := make([]float32, batch*qHeads*headDim)  // [B, Hq, 1, D]
		k := make([]float32, batch*kvHeads*headDim) // [B, Hkv, 1, D]
		v := make([]float32, batch*kvHeads*headDim)
		for i := range v {
			v[i] = float32(step)
		}
		if err := cache.Append(k, v); err != nil {
			panic(err)
		}
		out := make([]float32, len(q))
		cpu.Attention(0, out, q, cache.K, cache.V, cache.AttentionParams(qHeads, 1))
		// All scores are equal, so the output is the mean of the values so far.
		fmt.Printf("step %d: len %d, out[0] = %.2f\n", step, cache.Len(), out[0])
	}
	// Output:
	// step 0: len 1, out[0] = 0.00
	// step 1: len 2, out[0] = 0.50
	// step 2: len 3, out[0] = 1.00
}

// Sampling the next token with nucleus sampling, reproducibly.
func ExampleSampler() {
	logits := []float32{2, 1, 0.5, -1, 3}
	rng := rand.New(rand.NewPCG(1, 2)) // a fixed seed gives a fixed sequence
	var s cpu.Sampler
	var toks []int32
	for range 8 {
		toks = append(toks, s.Sample(logits, toks, cpu.SampleParams{Temperature: 0.8, TopP: 0.9, RepetitionPenalty: 1.1}, rng))
	}
	fmt.Println(toks, cpu.Greedy(logits))
	// Output: [4 4 4 4 4 4 4 1] 4
}

// A causal 1-d convolution over a [N, C, L] signal: output t depends on
// inputs up to t only.
func ExampleConv1D() {
	x := []float32{1, 2, 3, 4} // N=1, C=1, L=4
	w := []float32{1, 1, 1}    // a moving sum over 3 steps
	p := cpu.ConvParams{N: 1, InC: 1, OutC: 1, In: []int{4}, Kernel: []int{3},
		PadBegin: []int{1}, PadEnd: []int{1}, Causal: true}
	out := make([]float32, 4)
	cpu.Conv1D(0, out, x, w, nil, p)
	fmt.Println(p.OutSize(), out)
	// Output: [4] [1 3 6 9]
}
