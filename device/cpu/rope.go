package cpu

import (
	"fmt"
	"math"
)

// Rotary position embeddings (Su et al. 2021, RoFormer): the first dim
// entries of each head are taken as dim/2 pairs, and pair i at position p
// is rotated by the angle p * θ^(-2i/dim). dim may be less than the head
// size (partial rotary, as in GPT-NeoX and Phi); the rest of the head is
// left alone.
//
// Layout: x is [batch, seq, heads, headDim], row-major, rotated in place;
// a [seq, headDim] tensor is batch = heads = 1, and a [B, H, T, D] tensor
// (heads before sequence) is batch = B*H, seq = T, heads = 1.

// RopeMode says which entries of a head form the rotated pairs.
type RopeMode uint8

const (
	// RopeHalf pairs entry i with entry i + dim/2 ("rotate half"): GPT-NeoX
	// and the Hugging Face Llama, Qwen2 and Mistral code.
	RopeHalf RopeMode = iota
	// RopeInterleaved pairs entries 2i and 2i+1: RoFormer, GPT-J and
	// Meta's reference Llama code (complex multiplication).
	RopeInterleaved
)

func (m RopeMode) String() string {
	switch m {
	case RopeHalf:
		return "half"
	case RopeInterleaved:
		return "interleaved"
	}
	return fmt.Sprintf("RopeMode(%d)", uint8(m))
}

// RopeTable holds cos and sin of every angle for positions [0, MaxPos()):
// Cos and Sin are [MaxPos, Dim/2], row p holding the angles p*f_i. Build
// one per model (Qwen2 uses θ = 1e6, Llama 2 θ = 1e4) and share it.
type RopeTable struct {
	Cos, Sin []float32
	Dim      int // rotated entries per head, even
}

// NewRopeTable returns the table for maxPos positions, dim rotated entries
// and base theta: f_i = theta^(-2i/dim). Angles, cos and sin are computed in
// float64 and rounded once (the Hugging Face code forms p*f_i in float32,
// which is off by up to p*6e-8 radians at position p).
func NewRopeTable(maxPos, dim int, theta float64) RopeTable {
	if dim <= 0 || dim%2 != 0 {
		panic(fmt.Sprintf("cpu.NewRopeTable: dim = %d, want even and > 0", dim))
	}
	if !(theta > 1) {
		panic(fmt.Sprintf("cpu.NewRopeTable: theta = %v, want > 1", theta))
	}
	freqs := make([]float64, dim/2)
	for i := range freqs {
		freqs[i] = math.Pow(theta, -float64(2*i)/float64(dim))
	}
	return NewRopeTableFreqs(maxPos, freqs)
}

// NewRopeTableFreqs returns the table for the given per-pair frequencies
// (dim/2 of them): the hook for scaled variants (linear interpolation, NTK,
// YaRN, Llama 3) that adjust the frequencies before the table is built.
func NewRopeTableFreqs(maxPos int, freqs []float64) RopeTable {
	mustDims("NewRopeTableFreqs", maxPos)
	h := len(freqs)
	if h == 0 {
		panic("cpu.NewRopeTableFreqs: no frequencies")
	}
	t := RopeTable{Cos: make([]float32, maxPos*h), Sin: make([]float32, maxPos*h), Dim: 2 * h}
	for p := range maxPos {
		for i, f := range freqs {
			s, c := math.Sincos(float64(p) * f)
			t.Cos[p*h+i], t.Sin[p*h+i] = float32(c), float32(s)
		}
	}
	return t
}

// MaxPos returns the number of positions the table covers.
func (t RopeTable) MaxPos() int {
	if t.Dim == 0 {
		return 0
	}
	return len(t.Cos) / (t.Dim / 2)
}

// Rope rotates x ([batch, seq, heads, headDim], in place) with token s of
// every sequence at position pos0 + s: pos0 is the number of tokens already
// in the KV cache (0 for a prompt).
func Rope(threads int, x []float32, batch, seq, heads, headDim, pos0 int, tab RopeTable, mode RopeMode) {
	mustDims("Rope", batch, seq, heads, headDim, pos0)
	if seq > 0 && pos0+seq > tab.MaxPos() {
		panic(fmt.Sprintf("cpu.Rope: positions up to %d, table covers %d", pos0+seq-1, tab.MaxPos()))
	}
	rope(threads, "Rope", x, batch, seq, heads, headDim, tab, mode, func(b, s int) int { return pos0 + s })
}

// RopeAt is Rope with explicit positions: pos is [seq] (shared by the batch)
// or [batch, seq] (per sequence, for batched decode where each sequence has
// its own length).
func RopeAt(threads int, x []float32, batch, seq, heads, headDim int, pos []int32, tab RopeTable, mode RopeMode) {
	mustDims("RopeAt", batch, seq, heads, headDim)
	perBatch := len(pos) == batch*seq && batch != 1
	if !perBatch {
		mustLen("RopeAt", "pos", pos, seq)
	}
	maxPos := tab.MaxPos()
	for _, p := range pos {
		if p < 0 || int(p) >= maxPos {
			panic(fmt.Sprintf("cpu.RopeAt: position %d outside the table's [0, %d)", p, maxPos))
		}
	}
	rope(threads, "RopeAt", x, batch, seq, heads, headDim, tab, mode, func(b, s int) int {
		if perBatch {
			return int(pos[b*seq+s])
		}
		return int(pos[s])
	})
}

func rope(threads int, kernel string, x []float32, batch, seq, heads, headDim int, tab RopeTable, mode RopeMode, posOf func(b, s int) int) {
	mustLen(kernel, "x", x, batch*seq*heads*headDim)
	if tab.Dim <= 0 || tab.Dim%2 != 0 || tab.Dim > headDim || len(tab.Sin) != len(tab.Cos) {
		panic(fmt.Sprintf("cpu.%s: table dim %d does not fit head size %d", kernel, tab.Dim, headDim))
	}
	if mode != RopeHalf && mode != RopeInterleaved {
		panic(fmt.Sprintf("cpu.%s: unknown %v", kernel, mode))
	}
	h := tab.Dim / 2
	// One task per token: its heads share one row of the table.
	ParallelFor(threads, batch*seq, grainFor(heads*tab.Dim), func(lo, hi int) {
		for tok := lo; tok < hi; tok++ {
			p := posOf(tok/seq, tok%seq)
			cos, sin := tab.Cos[p*h:(p+1)*h], tab.Sin[p*h:(p+1)*h]
			for hd := range heads {
				row := x[(tok*heads+hd)*headDim:][:tab.Dim]
				if mode == RopeHalf {
					x1, x2 := row[:h], row[h:2*h]
					for i, c := range cos {
						s, a, b := sin[i], x1[i], x2[i]
						x1[i] = a*c - b*s
						x2[i] = b*c + a*s
					}
					continue
				}
				for i, c := range cos {
					s, a, b := sin[i], row[2*i], row[2*i+1]
					row[2*i] = a*c - b*s
					row[2*i+1] = b*c + a*s
				}
			}
		}
	})
}
