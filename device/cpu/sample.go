package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Token sampling from one row of logits. These run on one goroutine (a
// vocabulary row is ~150k values: one pass over it costs less than starting
// goroutines would save) and take no threads argument.

// SampleParams selects the sampling method, applied in the order of the
// Hugging Face logits processors: repetition penalty, temperature, top-k,
// top-p, then a draw from what is left.
type SampleParams struct {
	// Temperature divides the logits; <= 0 means greedy (argmax).
	Temperature float32
	// TopK keeps the k largest logits (ties broken by lower token id);
	// <= 0 means no limit.
	TopK int
	// TopP keeps the smallest set of most likely tokens whose probabilities
	// sum to at least TopP (nucleus sampling, Holtzman et al. 2020), at least
	// one token; <= 0 or >= 1 means no limit.
	TopP float32
	// RepetitionPenalty, if > 0 and != 1, penalizes every token in the
	// history passed to Sample once (Keskar et al. 2019, CTRL; the Hugging
	// Face convention): a positive logit is divided by it, a negative one
	// multiplied.
	RepetitionPenalty float32
}

// Greedy returns the index of the largest logit (the first on ties).
func Greedy(logits []float32) int32 {
	mustPositive("Greedy", "len(logits)", len(logits))
	return int32(argmaxRow(logits))
}

// ApplyRepetitionPenalty penalizes logits in place for every token in prev,
// once per distinct token however often it occurs (CTRL, Keskar et al.
// 2019, as in Hugging Face's RepetitionPenaltyLogitsProcessor): positive
// logits are divided by penalty, negative ones multiplied. prev ids must be
// in range.
func ApplyRepetitionPenalty(logits []float32, prev []int32, penalty float32) {
	if !(penalty > 0) {
		panic(fmt.Sprintf("cpu.ApplyRepetitionPenalty: penalty = %v, want > 0", penalty))
	}
	// Each distinct id once: a penalized logit cannot be told from an
	// unpenalized one, so deduplicate a copy of prev.
	ids := slices.Clone(prev)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	for _, id := range ids {
		checkID("ApplyRepetitionPenalty", id, len(logits))
		logits[id] = penalize(logits[id], penalty)
	}
}

func penalize(l, penalty float32) float32 {
	if l < 0 {
		return l * penalty
	}
	return l / penalty
}

func checkID(kernel string, id int32, vocab int) {
	if id < 0 || int(id) >= vocab {
		panic(fmt.Sprintf("cpu.%s: token id %d outside [0, %d)", kernel, id, vocab))
	}
}

// Sampler draws tokens from logits. It keeps scratch buffers between calls,
// so a decode loop allocates nothing per token; its zero value is ready to
// use. A Sampler is not safe for concurrent use: use one per sequence or
// goroutine.
type Sampler struct {
	l    []float32 // working logits, then a row of probabilities
	cand []int32   // candidate token ids, best first
	prob []float64 // their probabilities, same order
	hist []float64 // nucleus: probability mass per bucket
}

// Sample returns a token drawn from logits (one row, the vocabulary) under
// p, with prev the tokens generated so far (for the repetition penalty; may
// be nil). logits is not modified. The draw uses exactly one rng.Float64()
// unless the result is determined (greedy, or a single candidate), so a
// given seed gives a given sequence of tokens.
func (s *Sampler) Sample(logits []float32, prev []int32, p SampleParams, rng *rand.Rand) int32 {
	v := len(logits)
	mustPositive("Sampler.Sample", "len(logits)", v)
	penalty := p.RepetitionPenalty != 0 && p.RepetitionPenalty != 1 && len(prev) > 0
	if p.RepetitionPenalty < 0 || math.IsNaN(float64(p.RepetitionPenalty)) {
		panic(fmt.Sprintf("cpu.Sampler.Sample: RepetitionPenalty = %v", p.RepetitionPenalty))
	}
	l := logits
	if penalty {
		s.l = append(s.l[:0], logits...)
		l = s.l
		for _, id := range prev {
			checkID("Sampler.Sample", id, v)
			l[id] = penalize(logits[id], p.RepetitionPenalty) // from the original: once per distinct id
		}
	}
	best := argmaxRow(l)
	if !(p.Temperature > 0) {
		return int32(best)
	}
	mx := float64(l[best])
	if math.IsInf(mx, 0) || math.IsNaN(mx) {
		// Every token masked (-Inf), or one +Inf or NaN logit: nothing to
		// draw from; the argmax is the only sensible answer.
		return int32(best)
	}
	if rng == nil {
		panic("cpu.Sampler.Sample: nil rng with Temperature > 0")
	}
	invT := 1 / float64(p.Temperature)
	topP := float64(p.TopP)
	if !(topP > 0 && topP < 1) {
		topP = 1
	}
	k := p.TopK
	if k <= 0 || k > v {
		k = v
	}
	if k == v && topP == 1 {
		return s.sampleAll(l, mx, invT, rng)
	}
	// The candidates, best first, with unnormalized probabilities
	// e**((l - max)/T) and the total they are normalized by.
	var total float64
	if k < v {
		// Top-k: the k largest, renormalized among themselves.
		s.cand = topIndices(s.cand[:0], l, k)
		s.prob = s.prob[:0]
		for _, id := range s.cand {
			q := math.Exp((float64(l[id]) - mx) * invT)
			s.prob = append(s.prob, q)
			total += q
		}
	} else {
		// Top-p alone: the nucleus straight from the whole vocabulary.
		total = s.expSum(l, mx, invT)
		return s.nucleus(s.l2(v), topP*total, rng)
	}
	if topP < 1 {
		// The smallest prefix with mass >= topP (Holtzman et al. 2020, eq. 2);
		// all of it if rounding leaves the whole set just short.
		need, cum := topP*total, 0.0
		for i, q := range s.prob {
			if cum += q; cum >= need {
				s.cand, s.prob = s.cand[:i+1], s.prob[:i+1]
				break
			}
		}
	}
	if len(s.cand) == 1 {
		return s.cand[0]
	}
	var kept float64
	for _, q := range s.prob {
		kept += q
	}
	u := rng.Float64() * kept
	for i, q := range s.prob {
		if u < q {
			return s.cand[i]
		}
		u -= q
	}
	return s.cand[len(s.cand)-1] // u landed on the rounding slack at the top
}

// sampleAll draws from softmax(l/T) over the whole vocabulary, walking it in
// token order.
func (s *Sampler) sampleAll(l []float32, mx, invT float64, rng *rand.Rand) int32 {
	total := s.expSum(l, mx, invT)
	e := s.l2(len(l))
	u := rng.Float64() * total
	last := int32(0)
	for i, q := range e {
		if q == 0 {
			continue
		}
		last = int32(i)
		if u < float64(q) {
			return int32(i)
		}
		u -= float64(q)
	}
	return last
}

// expSum fills the scratch row with e**((l - mx)/T) and returns its sum.
func (s *Sampler) expSum(l []float32, mx, invT float64) float64 {
	e := s.l2(len(l))
	return expAffine(e, l, float32(invT), float32(-mx*invT))
}

// l2 returns a second scratch row of n floats, after s.l (which may hold the
// penalized logits).
func (s *Sampler) l2(n int) []float32 {
	if cap(s.l) < 2*n {
		l := make([]float32, len(s.l), 2*n)
		copy(l, s.l)
		s.l = l
	}
	return s.l[n : 2*n : 2*n]
}

// nucleusBuckets is the number of histogram buckets for the nucleus: one
// per value of the top 16 bits of a float32 in [0, 1] (sign 0, exponent
// <= 127, 7 mantissa bits), 128 buckets per octave of probability.
const nucleusBuckets = 0x3f80 + 1

// nucleus draws from the smallest set of most likely tokens whose mass is
// at least need, e holding the unnormalized probabilities (in [0, 1]) of the
// whole vocabulary. Sorting the vocabulary would cost O(V log V) per token;
// instead, one pass builds a histogram of mass by the top 16 bits of each
// probability (monotone in the value for non-negative floats), a walk down
// the buckets finds the one where the mass crosses need, and only that
// bucket's tokens are sorted. O(V) however flat the distribution is.
func (s *Sampler) nucleus(e []float32, need float64, rng *rand.Rand) int32 {
	if len(s.hist) != nucleusBuckets {
		s.hist = make([]float64, nucleusBuckets)
	}
	h := s.hist
	clear(h)
	for _, q := range e {
		h[math.Float32bits(q)>>16] += float64(q)
	}
	cut, cum := -1, 0.0
	for b := len(h) - 1; b >= 0; b-- {
		if cum+h[b] >= need {
			cut = b
			break
		}
		cum += h[b]
	}
	// Tokens above the boundary bucket are in; within it, the best first
	// (ties: lower id) until the mass reaches need. Rounding can leave the
	// whole vocabulary just short: then everything with mass > 0 is in.
	var lastV float32 = -1
	lastID := int32(-1)
	if cut >= 0 {
		s.cand = s.cand[:0]
		for i, q := range e {
			if int(math.Float32bits(q)>>16) == cut {
				s.cand = append(s.cand, int32(i))
			}
		}
		slices.SortFunc(s.cand, func(a, b int32) int {
			switch {
			case e[a] > e[b] || e[a] == e[b] && a < b:
				return -1
			case e[b] > e[a] || e[a] == e[b] && b < a:
				return 1
			}
			return 0
		})
		for _, id := range s.cand {
			cum += float64(e[id])
			lastV, lastID = e[id], id
			if cum >= need {
				break
			}
		}
	}
	in := func(i int, q float32) bool {
		if cut < 0 {
			return q > 0
		}
		b := int(math.Float32bits(q) >> 16)
		return b > cut || b == cut && (q > lastV || q == lastV && int32(i) <= lastID)
	}
	kept := 0.0
	n, only := 0, int32(0)
	for i, q := range e {
		if in(i, q) {
			kept += float64(q)
			n, only = n+1, int32(i)
		}
	}
	if n == 1 {
		return only
	}
	u := rng.Float64() * kept
	for i, q := range e {
		if !in(i, q) {
			continue
		}
		if u < float64(q) {
			return int32(i)
		}
		u -= float64(q)
		only = int32(i)
	}
	return only // u landed on the rounding slack at the end
}

// topIndices appends to dst the ids of the m largest values of l, best
// first (ties: lower id first). A bounded min-heap of the best so far makes
// this one pass over l with, for random orders, few heap updates
// (O(V + m log m log V) expected).
func topIndices(dst []int32, l []float32, m int) []int32 {
	better := func(a, b int32) bool { return l[a] > l[b] || l[a] == l[b] && a < b }
	h := dst[:0]
	for i := range l {
		id := int32(i)
		if len(h) < m {
			h = append(h, id)
			// sift up: h[0] is the worst kept
			for c := len(h) - 1; c > 0; {
				par := (c - 1) / 2
				if !better(h[par], h[c]) {
					break
				}
				h[par], h[c] = h[c], h[par]
				c = par
			}
			continue
		}
		if !better(id, h[0]) {
			continue
		}
		h[0] = id
		for c := 0; ; {
			a, b := 2*c+1, 2*c+2
			w := c
			if a < len(h) && better(h[w], h[a]) {
				w = a
			}
			if b < len(h) && better(h[w], h[b]) {
				w = b
			}
			if w == c {
				break
			}
			h[c], h[w] = h[w], h[c]
			c = w
		}
	}
	slices.SortFunc(h, func(a, b int32) int {
		if better(a, b) {
			return -1
		}
		if better(b, a) {
			return 1
		}
		return 0
	})
	return h
}
