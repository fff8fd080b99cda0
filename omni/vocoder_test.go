package omni

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/omniflow-go/omniflow/operators/nn"
)

func testVocoder(t testing.TB) *vocoder {
	t.Helper()
	m, err := Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	v, err := newVocoder(nn.Random(5), m.Vocoder)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func randomCodes(n, codes int, seed uint64) []int32 {
	rng := rand.New(rand.NewPCG(seed, 2))
	c := make([]int32, n)
	for i := range c {
		c[i] = int32(rng.IntN(codes))
	}
	return c
}

// TestVocoderChunksMatchWhole: decoding in chunks (of 25 frames, the
// default, and of 11) with the vocoder's left context gives the samples a
// decode of the whole sequence gives — no seam at chunk boundaries —
// while a decode with too little context would not (which shows the
// context is needed and the check can fail).
func TestVocoderChunksMatchWhole(t *testing.T) {
	ctx := context.Background()
	v := testVocoder(t)
	codes := randomCodes(60, v.cfg.Codes, 1)
	whole, err := v.decode(ctx, codes)
	if err != nil {
		t.Fatal(err)
	}
	if len(whole) != 60*480 {
		t.Fatalf("%d samples for 60 frames", len(whole))
	}
	// Rounding: the same arithmetic on the same values except that
	// convolutions see a different number of output positions; 1e-5 is
	// ~100 float32 ulps of the O(0.1) samples.
	const tol = 1e-5
	for _, chunk := range []int{25, 11} {
		var got []float32
		for s := 0; s < len(codes); s += chunk {
			pcm, err := v.decodeChunk(ctx, codes, s, min(s+chunk, len(codes)))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, pcm...)
		}
		if len(got) != len(whole) {
			t.Fatalf("chunk %d: %d samples, want %d", chunk, len(got), len(whole))
		}
		for i := range whole {
			if d := math.Abs(float64(got[i] - whole[i])); d > tol {
				t.Fatalf("chunk %d: sample %d (frame %d) is %g, whole decode %g", chunk, i, i/480, got[i], whole[i])
			}
		}
	}
	// With only one frame of context the first samples after a boundary
	// differ: the receptive field is real.
	short := *v
	short.ctxFrame = 1
	pcm, err := short.decodeChunk(ctx, codes, 40, 50)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i := range pcm {
		worst = math.Max(worst, math.Abs(float64(pcm[i]-whole[40*480+i])))
	}
	if worst < 1e-4 {
		t.Errorf("one frame of context already matches (worst %g): the context bound is not tight", worst)
	}
	t.Logf("context %d frames; with 1 frame the seam error is %.3g", v.ctxFrame, worst)
}

// TestVocoderIsCausal: changing a code changes no sample before its frame.
func TestVocoderIsCausal(t *testing.T) {
	ctx := context.Background()
	v := testVocoder(t)
	codes := randomCodes(30, v.cfg.Codes, 3)
	a, err := v.decode(ctx, codes)
	if err != nil {
		t.Fatal(err)
	}
	codes[20] = (codes[20] + 1) % int32(v.cfg.Codes)
	b, err := v.decode(ctx, codes)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 * 480 {
		if a[i] != b[i] {
			t.Fatalf("sample %d (frame %d) changed with frame 20's code", i, i/480)
		}
	}
	if a[20*480+479] == b[20*480+479] && a[21*480] == b[21*480] {
		t.Error("frame 20's code changed nothing")
	}
}
