package dit

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omniflow-go/omniflow/diffusion/internal/weighttest"
	"github.com/omniflow-go/omniflow/operators/nn"
	"github.com/omniflow-go/omniflow/tensor"
	"github.com/omniflow-go/omniflow/tensor/safetensors"
)

func randTensor(seed uint64, shape ...int) *tensor.Tensor {
	t := tensor.Zeros(tensor.Float32, shape...)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range t.Float32s() {
		t.Float32s()[i] = float32(r.NormFloat64())
	}
	return t
}

func TestTimestepEmbedding(t *testing.T) {
	// Hand values: dim 4 has h = 2 frequencies, 1 and 10000^(-1/2) = 0.01.
	e, err := TimestepEmbedding([]float64{0, 1, 999}, 4)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{1, 1, 0, 0, math.Cos(1), math.Cos(0.01), math.Sin(1), math.Sin(0.01),
		math.Cos(999), math.Cos(9.99), math.Sin(999), math.Sin(9.99)}
	for i, w := range want {
		if g := float64(e.Float32s()[i]); math.Abs(g-w) > 1e-7 {
			t.Errorf("element %d = %v, want %v", i, g, w)
		}
	}
	// The formula at width 256 (Wan's freq_dim), in float64: the result is
	// the float64 value rounded once, so within half a float32 ulp.
	ts := []float64{0, 0.5, 37, 500, 874.9, 1000}
	e, err = TimestepEmbedding(ts, 256)
	if err != nil {
		t.Fatal(err)
	}
	for r, tv := range ts {
		for i := range 128 {
			f := math.Exp(-math.Log(10000) * float64(i) / 128)
			for k, w := range []float64{math.Cos(tv * f), math.Sin(tv * f)} {
				g := float64(e.Float32s()[r*256+k*128+i])
				if math.Abs(g-w) > 6e-8 {
					t.Fatalf("t=%v, i=%d, part %d: %v, want %v", tv, i, k, g, w)
				}
			}
		}
	}
	if _, err := TimestepEmbedding(ts, 5); !errors.Is(err, ErrConfig) {
		t.Errorf("odd width: %v", err)
	}
}

func TestPatchifyRoundTrip(t *testing.T) {
	for _, c := range []struct {
		name  string
		shape []int
		patch [3]int
	}{
		{"video", []int{2, 3, 4, 6, 8}, [3]int{1, 2, 2}},
		{"video-temporal-patch", []int{1, 2, 4, 4, 6}, [3]int{2, 2, 3}},
		{"image", []int{2, 4, 6, 4}, [3]int{1, 2, 2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			x := randTensor(1, c.shape...)
			tok, g, err := Patchify(x, c.patch)
			if err != nil {
				t.Fatal(err)
			}
			ch := c.shape[1]
			pd := c.patch[0] * c.patch[1] * c.patch[2]
			if tok.Dim(1) != g.Len() || tok.Dim(2) != pd*ch {
				t.Fatalf("tokens %v for grid %v", tok.Shape(), g)
			}
			// Spot-check the order: token (f, h, w), entry (pt, ph, pw, c).
			twoD := len(c.shape) == 4
			at := func(b, cc, f, h, w int) float64 {
				if twoD {
					return x.At(b, cc, h, w)
				}
				return x.At(b, cc, f, h, w)
			}
			pt, ph, pw := c.patch[0], c.patch[1], c.patch[2]
			for b := range c.shape[0] {
				for f := range g.F {
					for h := range g.H {
						for w := range g.W {
							for i := range pd * ch {
								cc, rest := i%ch, i/ch
								qw, rest := rest%pw, rest/pw
								qh, qt := rest%ph, rest/ph
								got := tok.At(b, (f*g.H+h)*g.W+w, i)
								if want := at(b, cc, f*pt+qt, h*ph+qh, w*pw+qw); got != want {
									t.Fatalf("token (%d,%d,%d) entry %d = %v, want %v", f, h, w, i, got, want)
								}
							}
						}
					}
				}
			}
			back, err := Unpatchify(tok, g, c.patch, ch, twoD)
			if err != nil {
				t.Fatal(err)
			}
			if !tensor.SameShape(back.Shape(), x.Shape()) {
				t.Fatalf("round trip shape %v, want %v", back.Shape(), x.Shape())
			}
			for i, v := range x.Float32s() {
				if back.Float32s()[i] != v {
					t.Fatalf("round trip element %d: %v, want %v exactly", i, back.Float32s()[i], v)
				}
			}
		})
	}
	if _, _, err := Patchify(randTensor(1, 1, 2, 3, 4, 4), [3]int{2, 2, 2}); err == nil {
		t.Error("a patch that does not divide the latent was accepted")
	}
}

func TestModulateMatchesFloat64(t *testing.T) {
	ctx := context.Background()
	x := randTensor(1, 2, 5, 8)
	for _, c := range []struct {
		name  string
		shape []int // shift and scale
	}{{"per-sample", []int{2, 1, 8}}, {"per-token", []int{2, 5, 8}}} {
		shift, scale := randTensor(2, c.shape...), randTensor(3, c.shape...)
		y, err := Modulate(ctx, x, shift, scale)
		if err != nil {
			t.Fatal(err)
		}
		for b := range 2 {
			for l := range 5 {
				for d := range 8 {
					ml := l
					if c.shape[1] == 1 {
						ml = 0
					}
					// adaLN: x·(1+scale)+shift, DiT (Peebles & Xie 2023) as Wan writes it.
					want := x.At(b, l, d)*(1+scale.At(b, ml, d)) + shift.At(b, ml, d)
					if g := y.At(b, l, d); math.Abs(g-want) > 1e-6*(1+math.Abs(want)) {
						t.Fatalf("%s: (%d,%d,%d) = %v, want %v", c.name, b, l, d, g, want)
					}
				}
			}
		}
		gate := randTensor(4, c.shape...)
		z, err := GatedAdd(ctx, x, y, gate)
		if err != nil {
			t.Fatal(err)
		}
		ml := func(l int) int { return min(l, c.shape[1]-1) }
		if g, want := z.At(1, 4, 7), x.At(1, 4, 7)+gate.At(1, ml(4), 7)*y.At(1, 4, 7); math.Abs(g-want) > 1e-5 {
			t.Errorf("%s: gated add %v, want %v", c.name, g, want)
		}
	}
}

func TestRopeTable(t *testing.T) {
	if got := RopePairs(128); got != [3]int{22, 21, 21} {
		t.Errorf("Wan head 128 splits into %v pairs, want (22, 21, 21): dims 44, 42, 42", got)
	}
	if got := RopePairs(16); got != [3]int{4, 2, 2} {
		t.Errorf("head 16: %v", got)
	}
	g := Grid{2, 3, 4}
	pos := GridPositions(g, [3]int32{5, 0, 0})
	pairs := [3]int{4, 2, 2}
	tab := RopeTable(pos, pairs, 10000)
	if tab.Dim != 16 || tab.MaxPos() != g.Len() {
		t.Fatalf("table dim %d rows %d", tab.Dim, tab.MaxPos())
	}
	for r := range g.Len() {
		f, h, w := 5+r/12, r/4%3, r%4
		i := 0
		for a, n := range pairs {
			p := []int{f, h, w}[a]
			for k := range n {
				// rope_params: 1/θ^(2k/d_a), d_a = 2n.
				ang := float64(p) / math.Pow(10000, float64(2*k)/float64(2*n))
				if math.Abs(float64(tab.Cos[r*8+i])-math.Cos(ang)) > 1e-7 || math.Abs(float64(tab.Sin[r*8+i])-math.Sin(ang)) > 1e-7 {
					t.Fatalf("token %d pair %d: angle %v", r, i, ang)
				}
				i++
			}
		}
	}
}

func tinyWan() Config    { return TinyWan(4, 32) }
func tinyZImage() Config { return TinyZImage(4, 32) }

func TestModelsBatchAndShape(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		cfg    Config
		latent []int
	}{
		{"wan", tinyWan(), []int{2, 4, 2, 4, 6}},
		{"zimage", tinyZImage(), []int{2, 4, 4, 6}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := weighttest.NewRecorder(7)
			m, err := New(rec, c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := rec.NumParams(), c.cfg.NumParams(); got != want {
				t.Errorf("NumParams() = %d, the builder asked for %d", want, got)
			}
			lat := randTensor(1, c.latent...)
			text := randTensor(2, 2, 6, 32)
			mask := []bool{true, true, true, false, false, false, true, true, true, true, true, false}
			in := Input{Latent: lat, Timesteps: []float64{900, 900}, Context: text, ContextMask: mask}
			if c.cfg.Family == ZImage {
				in.Timesteps = []float64{0.1, 0.1}
			}
			out, err := m.Forward(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			if !tensor.SameShape(out.Shape(), lat.Shape()) {
				t.Fatalf("output %v for latent %v", out.Shape(), lat.Shape())
			}
			// Batch independence: sample 1 alone gives what it gave in the
			// batch (the property Z-Image's batched CFG relies on).
			one := func(x *tensor.Tensor, i int) *tensor.Tensor {
				v, _ := x.Slice(0, i, i+1)
				c, _ := v.Clone()
				return c
			}
			alone, err := m.Forward(ctx, Input{Latent: one(lat, 1), Timesteps: in.Timesteps[1:], Context: one(text, 1), ContextMask: mask[6:]})
			if err != nil {
				t.Fatal(err)
			}
			n := alone.NumElements()
			var norm float64
			for i, v := range alone.Float32s() {
				g := out.Float32s()[n+i]
				norm += float64(v * v)
				if math.Abs(float64(g-v)) > 2e-4*(1+math.Abs(float64(v))) || math.IsNaN(float64(g)) {
					t.Fatalf("element %d: %v in the batch, %v alone", i, g, v)
				}
			}
			if norm == 0 {
				t.Error("the output is all zero")
			}
		})
	}
}

func TestWanCleanFirstFrame(t *testing.T) {
	ctx := context.Background()
	m, err := New(nn.Random(3), tinyWan())
	if err != nil {
		t.Fatal(err)
	}
	lat := randTensor(1, 1, 4, 3, 4, 4)
	text := randTensor(2, 1, 5, 32)
	run := func(ts float64, clean bool) []float32 {
		out, err := m.Forward(ctx, Input{Latent: lat, Timesteps: []float64{ts}, CleanFirstFrame: clean, Context: text})
		if err != nil {
			t.Fatal(err)
		}
		return out.Float32s()
	}
	// With t = 0 everywhere, per-token timesteps change nothing.
	a, b := run(0, false), run(0, true)
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-5 {
			t.Fatalf("t=0: element %d differs: %v vs %v", i, a[i], b[i])
		}
	}
	// With t = 800 they do.
	c, d := run(800, false), run(800, true)
	diff := 0.0
	for i := range c {
		diff += math.Abs(float64(c[i] - d[i]))
	}
	if diff == 0 {
		t.Error("CleanFirstFrame had no effect")
	}
}

func TestCheckpointLoading(t *testing.T) {
	for _, cfg := range []Config{tinyWan(), tinyZImage()} {
		t.Run(string(cfg.Family), func(t *testing.T) {
			rec := weighttest.NewRecorder(11)
			if _, err := New(rec, cfg); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			open := func(name string, w map[string]*tensor.Tensor) nn.Source {
				path := filepath.Join(dir, name)
				if err := safetensors.WriteFile(path, w, nil); err != nil {
					t.Fatal(err)
				}
				f, err := safetensors.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { f.Close() })
				return nn.Checkpoint(f)
			}
			if _, err := New(open("ok.safetensors", rec.Weights()), cfg); err != nil {
				t.Fatalf("loading the weights the builder asked for: %v", err)
			}
			victim := "blocks.1.modulation"
			if cfg.Family == ZImage {
				victim = "layers.1.attention.norm_k.weight"
			}
			if _, err := New(open("missing.safetensors", weighttest.Without(rec.Weights(), victim)), cfg); !errors.Is(err, nn.ErrWeight) || !strings.Contains(err.Error(), victim) {
				t.Errorf("missing %s: %v", victim, err)
			}
			if _, err := New(open("bad.safetensors", weighttest.Reshaped(rec.Weights(), victim, 3)), cfg); !errors.Is(err, nn.ErrWeight) || !strings.Contains(err.Error(), victim) {
				t.Errorf("mis-shaped %s: %v", victim, err)
			}
		})
	}
}

func TestPresetSizes(t *testing.T) {
	for _, c := range []struct {
		name     string
		cfg      Config
		min, max float64
	}{
		{"Wan2.2 A14B expert", Wan22A14B(), 13.5e9, 15e9},
		{"Wan2.2 TI2V-5B", Wan22TI2V5B(), 4.5e9, 5.5e9},
		{"Z-Image-Turbo", ZImageTurbo(), 5.8e9, 6.5e9},
	} {
		if err := c.cfg.Validate(); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		if n := float64(c.cfg.NumParams()); n < c.min || n > c.max {
			t.Errorf("%s: %.3g parameters, want [%.3g, %.3g]", c.name, n, c.min, c.max)
		}
	}
	bad := tinyWan()
	bad.Heads = 3
	if _, err := New(nn.Random(1), bad); !errors.Is(err, ErrConfig) {
		t.Errorf("dim 64 over 3 heads: %v", err)
	}
}
