package vae

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
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/memory"
	"github.com/omniflow-go/omniflow/tensor"
	"github.com/omniflow-go/omniflow/tensor/safetensors"
)

func randTensor(seed uint64, shape ...int) *tensor.Tensor {
	t := tensor.Zeros(tensor.Float32, shape...)
	r := rand.New(rand.NewPCG(seed, 2))
	for i := range t.Float32s() {
		t.Float32s()[i] = float32(r.NormFloat64())
	}
	return t
}

func TestDecoderShapes(t *testing.T) {
	ctx := context.Background()
	patched := TinyWan()
	patched.PixelPatch = 2
	for _, c := range []struct {
		name      string
		cfg       Config
		in, want  []int
		encoderIn []int
	}{
		{"wan-1-frame", TinyWan(), []int{1, 4, 1, 2, 3}, []int{1, 3, 1, 16, 24}, []int{1, 3, 1, 16, 24}},
		{"wan-2-latent-frames", TinyWan(), []int{1, 4, 2, 4, 4}, []int{1, 3, 5, 32, 32}, []int{1, 3, 5, 32, 32}},
		{"wan-3-latent-frames", TinyWan(), []int{2, 4, 3, 2, 2}, []int{2, 3, 9, 16, 16}, []int{2, 3, 9, 16, 16}},
		{"wan-pixel-patch", patched, []int{1, 4, 2, 2, 2}, []int{1, 3, 5, 32, 32}, []int{1, 3, 5, 32, 32}},
		{"kl", TinyKL(), []int{1, 4, 4, 3}, []int{1, 3, 32, 24}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			dec, err := NewDecoder(nn.Random(1), c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			y, err := dec.Decode(ctx, randTensor(3, c.in...))
			if err != nil {
				t.Fatal(err)
			}
			if !tensor.SameShape(y.Shape(), c.want) {
				t.Fatalf("decoded %v to %v, want %v", c.in, y.Shape(), c.want)
			}
			var lo, hi float32
			for _, v := range y.Float32s() {
				lo, hi = min(lo, v), max(hi, v)
			}
			if lo < -1 || hi > 1 || lo == hi {
				t.Errorf("pixels in [%v, %v], want a non-constant image in [-1, 1]", lo, hi)
			}
			if c.encoderIn == nil {
				return
			}
			enc, err := NewEncoder(nn.Random(1), c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			z, err := enc.Encode(ctx, randTensor(4, c.encoderIn...))
			if err != nil {
				t.Fatal(err)
			}
			if !tensor.SameShape(z.Shape(), c.in) {
				t.Fatalf("encoded %v to %v, want %v", c.encoderIn, z.Shape(), c.in)
			}
		})
	}
}

func TestUpsampleShapesAndValues(t *testing.T) {
	ctx := context.Background()
	x := randTensor(1, 1, 2, 3, 4)
	u, err := upsampleNearest(x)
	if err != nil {
		t.Fatal(err)
	}
	if !tensor.SameShape(u.Shape(), []int{1, 2, 6, 8}) {
		t.Fatalf("upsampled %v", u.Shape())
	}
	for c := range 2 {
		for y := range 6 {
			for xx := range 8 {
				if u.At(0, c, y, xx) != x.At(0, c, y/2, xx/2) {
					t.Fatalf("(%d,%d,%d) is not its nearest source", c, y, xx)
				}
			}
		}
	}
	// Wan's temporal doubling: frame 2t+j is channel half j at time t.
	v := randTensor(2, 1, 4, 3, 2, 2)
	il, err := interleaveTime(v, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !tensor.SameShape(il.Shape(), []int{1, 2, 6, 2, 2}) || il.At(0, 1, 5, 1, 0) != v.At(0, 3, 2, 1, 0) || il.At(0, 0, 2, 0, 1) != v.At(0, 0, 1, 0, 1) {
		t.Errorf("interleave: %v", il.Shape())
	}
	// A temporal Resample: 3 frames → 1 + 2·2, channels halved, space ×2.
	src := nn.Random(5)
	r := &resample{name: "r", up: true, channels: 8}
	if r.spatial, err = newConv(src, "r.resample.1", 8, 4, []int{3, 3}, convPad1()); err != nil {
		t.Fatal(err)
	}
	if r.timeConv, err = newConv(src, "r.time_conv", 8, 16, []int{3, 1, 1}, causalTime()); err != nil {
		t.Fatal(err)
	}
	out, err := r.forward(ctx, randTensor(3, 1, 8, 3, 2, 3))
	if err != nil {
		t.Fatal(err)
	}
	if !tensor.SameShape(out.Shape(), []int{1, 4, 5, 4, 6}) {
		t.Errorf("upsample3d: %v, want [1 4 5 4 6]", out.Shape())
	}
	// Pixel patches round trip exactly.
	p := randTensor(4, 2, 12, 3, 4, 6)
	sh, err := pixelShuffle(p, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !tensor.SameShape(sh.Shape(), []int{2, 3, 3, 8, 12}) {
		t.Fatalf("shuffle %v", sh.Shape())
	}
	back, err := pixelUnshuffle(sh, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range p.Float32s() {
		if back.Float32s()[i] != v {
			t.Fatalf("pixel patch round trip: element %d", i)
		}
	}
}

// TestCausalInTime: output frame t of the causal conv, and every decoded
// frame of latent frame f, do not change when later inputs change.
func TestCausalInTime(t *testing.T) {
	ctx := context.Background()
	c, err := causal3(nn.Random(2), "c", 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	x := randTensor(1, 1, 3, 6, 4, 4)
	y, err := c.forward(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	for cut := range 6 {
		x2, _ := x.Clone()
		d := x2.Float32s()
		for ch := range 3 {
			for f := cut; f < 6; f++ {
				for i := range 16 {
					d[(ch*6+f)*16+i] += 10
				}
			}
		}
		y2, err := c.forward(ctx, x2)
		if err != nil {
			t.Fatal(err)
		}
		for ch := range 5 {
			for f := range 6 {
				for i := range 16 {
					a, b := y.Float32s()[(ch*6+f)*16+i], y2.Float32s()[(ch*6+f)*16+i]
					if f < cut && a != b {
						t.Fatalf("changing frames >= %d changed output frame %d", cut, f)
					}
					if f == cut && i == 5 && a == b {
						t.Fatalf("changing frame %d did not change output frame %d", cut, f)
					}
				}
			}
		}
	}

	dec, err := NewDecoder(nn.Random(1), TinyWan())
	if err != nil {
		t.Fatal(err)
	}
	z := randTensor(5, 1, 4, 3, 2, 2)
	full, err := dec.Decode(ctx, z)
	if err != nil {
		t.Fatal(err)
	}
	z2, _ := z.Clone()
	for ch := range 4 {
		for i := range 4 {
			z2.Float32s()[(ch*3+2)*4+i] = 3 // latent frame 2 only
		}
	}
	part, err := dec.Decode(ctx, z2)
	if err != nil {
		t.Fatal(err)
	}
	plane := 16 * 16
	for ch := range 3 {
		for f := range 9 {
			changed := false
			for i := range plane {
				if full.Float32s()[(ch*9+f)*plane+i] != part.Float32s()[(ch*9+f)*plane+i] {
					changed = true
				}
			}
			// Latent frame 2 decodes to frames 5..8; 0..4 come from latent
			// frames 0 and 1.
			if changed != (f >= 5) {
				t.Errorf("channel %d frame %d changed=%v after editing latent frame 2", ch, f, changed)
			}
		}
	}
}

func TestCheckpointLoading(t *testing.T) {
	for _, c := range []struct {
		cfg    Config
		victim string
	}{
		{TinyWan(), "decoder.upsamples.5.time_conv.weight"},
		{TinyKL(), "decoder.up_blocks.1.resnets.0.norm2.weight"},
	} {
		t.Run(string(c.cfg.Kind), func(t *testing.T) {
			rec := weighttest.NewRecorder(1)
			if _, err := NewDecoder(rec, c.cfg); err != nil {
				t.Fatal(err)
			}
			encoder := c.cfg.Kind == KindWan
			if encoder {
				if _, err := NewEncoder(rec, c.cfg); err != nil {
					t.Fatal(err)
				}
			}
			if n, err := c.cfg.NumParams(encoder); err != nil || n != rec.NumParams() {
				t.Errorf("NumParams = %d (%v), the builders asked for %d", n, err, rec.NumParams())
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
			if _, err := NewDecoder(open("ok.safetensors", rec.Weights()), c.cfg); err != nil {
				t.Fatal(err)
			}
			for name, w := range map[string]map[string]*tensor.Tensor{
				"missing":   weighttest.Without(rec.Weights(), c.victim),
				"misshaped": weighttest.Reshaped(rec.Weights(), c.victim, 2, 2),
			} {
				if _, err := NewDecoder(open(name+".safetensors", w), c.cfg); !errors.Is(err, nn.ErrWeight) || !strings.Contains(err.Error(), c.victim) {
					t.Errorf("%s %s: %v", name, c.victim, err)
				}
			}
		})
	}
}

func TestPresetsAndFrames(t *testing.T) {
	for _, c := range []struct {
		name     string
		cfg      Config
		encoder  bool
		min, max float64
	}{
		{"Wan 2.1 VAE", Wan21(), true, 1.1e8, 1.5e8},
		{"Flux VAE decoder", FluxKL(), false, 4e7, 6e7},
	} {
		n, err := c.cfg.NumParams(c.encoder)
		if err != nil || float64(n) < c.min || float64(n) > c.max {
			t.Errorf("%s: %d parameters (%v), want [%.2g, %.2g]", c.name, n, err, c.min, c.max)
		}
	}
	w := Wan21()
	if w.SpatialFactor() != 8 || w.TemporalFactor() != 4 || Wan22().SpatialFactor() != 16 {
		t.Errorf("factors %d %d %d", w.SpatialFactor(), w.TemporalFactor(), Wan22().SpatialFactor())
	}
	if f, err := w.LatentFrames(81); f != 21 || err != nil {
		t.Errorf("81 frames: %d latent frames (%v), want 21", f, err)
	}
	if _, err := w.LatentFrames(80); !errors.Is(err, ErrConfig) {
		t.Errorf("80 frames: %v", err)
	}
	if w.Frames(21) != 81 || math.Abs(FluxKL().ScalingFactor-0.3611) > 0 {
		t.Error("frames/scaling")
	}
}

// TestChannelRMSNorm: Wan's RMS_norm, F.normalize(x, dim=1)·√C·γ, from its
// definition in float64, including a position whose channels are all zero
// (F.normalize gives 0 there). Tolerance 1e-6·(1+|y|): the kernel's three
// float32 roundings bound it by 4·2⁻²⁴|y| ≈ 2.4e-7|y|, with margin; its
// ε = 1e-24/C differs from the clamp at 1e-12 only for norms near 1e-12.
func TestChannelRMSNorm(t *testing.T) {
	x := randTensor(9, 2, 5, 3, 7, 11)
	for c := range 5 {
		x.Float32s()[c*3*7*11+4] = 0 // image 0, position 4
	}
	gamma := randTensor(10, 5, 1, 1, 1)
	n := &rmsNorm{name: "n", gamma: gamma}
	y, err := n.forward(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	s := 3 * 7 * 11
	for b := range 2 {
		for p := range s {
			norm := 0.0
			for c := range 5 {
				v := float64(x.Float32s()[(b*5+c)*s+p])
				norm += v * v
			}
			norm = math.Max(math.Sqrt(norm), 1e-12)
			for c := range 5 {
				want := float64(x.Float32s()[(b*5+c)*s+p]) / norm * math.Sqrt(5) * float64(gamma.Float32s()[c])
				if g := float64(y.Float32s()[(b*5+c)*s+p]); !(math.Abs(g-want) <= 1e-6*(1+math.Abs(want))) {
					t.Fatalf("(%d, %d, %d) = %v, want %v", b, c, p, g, want)
				}
			}
		}
	}
}

// TestDecodeProfileHasChannelNormKernels: in a recorded Wan decode every
// RMSNorm layer runs as one rms_norm_channels kernel span (device, dtype,
// FLOPs, bytes) nested under it, and there are as many kernels as norms.
func TestDecodeProfileHasChannelNormKernels(t *testing.T) {
	dec, err := NewDecoder(nn.Random(1), TinyWan())
	if err != nil {
		t.Fatal(err)
	}
	mem := memory.New()
	p, err := profiler.New(profiler.WithSink(mem))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	actx, act := p.Enter(ctx, profiler.Track{Stage: 0, StageName: "decode", LaneName: "vae"}, "decode")
	y, err := dec.Decode(actx, randTensor(3, 1, 4, 2, 4, 4))
	act.End(err)
	if _, err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	y.Release()
	norms := map[uint64]int{} // RMSNorm span id -> its rms_norm_channels kernels
	var kernels []profiler.Record
	for _, r := range mem.Records() {
		switch {
		case r.Kind == profiler.KindModule && r.Name == "RMSNorm":
			norms[r.ID] += 0
		case r.Kind == profiler.KindKernel && r.Name == "rms_norm_channels":
			kernels = append(kernels, r)
		}
	}
	if len(norms) == 0 || len(kernels) != len(norms) {
		t.Fatalf("%d RMSNorm layers and %d rms_norm_channels kernels, want as many, > 0", len(norms), len(kernels))
	}
	for _, k := range kernels {
		if _, ok := norms[k.Parent]; !ok {
			t.Fatalf("rms_norm_channels span %d is not under an RMSNorm layer", k.ID)
		}
		norms[k.Parent]++
		for _, key := range []string{"device", "dtype", "flops", "bytes"} {
			if _, ok := k.Attr(key); !ok {
				t.Errorf("rms_norm_channels span without %s", key)
			}
		}
	}
	for id, n := range norms {
		if n != 1 {
			t.Errorf("RMSNorm span %d has %d rms_norm_channels kernels, want 1", id, n)
		}
	}
}

// TestLatentStatistics: the Wan VAEs carry their published per-channel
// latent statistics (diffusers' AutoencoderKLWan defaults for Wan 2.1,
// Wan2.2-TI2V-5B-Diffusers vae/config.json for Wan 2.2; first and last
// values checked against those files), and they validate.
func TestLatentStatistics(t *testing.T) {
	for _, c := range []struct {
		name                           string
		cfg                            Config
		mean0, meanLast, std0, stdLast float64
	}{
		{"Wan 2.1", Wan21(), -0.7571, -0.2921, 2.8184, 1.9160},
		{"Wan 2.2", Wan22(), -0.2289, -0.0667, 0.4765, 0.7744},
	} {
		m, s := c.cfg.LatentsMean, c.cfg.LatentsStd
		if len(m) != c.cfg.ZDim || len(s) != c.cfg.ZDim {
			t.Fatalf("%s: %d means and %d stds for %d channels", c.name, len(m), len(s), c.cfg.ZDim)
		}
		if m[0] != c.mean0 || m[len(m)-1] != c.meanLast || s[0] != c.std0 || s[len(s)-1] != c.stdLast {
			t.Errorf("%s: mean %v … %v, std %v … %v", c.name, m[0], m[len(m)-1], s[0], s[len(s)-1])
		}
		if err := c.cfg.Validate(); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	// Each call returns its own copy: a caller's edit changes no preset.
	a := Wan21()
	a.LatentsMean[0] = 42
	if Wan21().LatentsMean[0] != -0.7571 {
		t.Error("Wan21's statistics are shared with its callers")
	}
	bad := TinyWan()
	bad.LatentsMean, bad.LatentsStd = []float64{0, 0, 0, 0}, []float64{1, 0, 1, 1}
	if err := bad.Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "channel 1") {
		t.Errorf("a zero std: %v, want ErrConfig naming channel 1", err)
	}
}

// TestLatentNormalization: with per-channel statistics the decoder sees
// latents / (1/std) + mean, and the encoder returns (μ − mean)·(1/std) —
// diffusers' WanPipeline before vae.decode and WanImageToVideoPipeline on
// the encoded condition, recomputed here in float64. Tolerance: one
// float32 rounding of the result (2⁻²⁴ relative), with room for the
// absolute error near zero.
func TestLatentNormalization(t *testing.T) {
	ctx := context.Background()
	plain := TinyWan()
	norm := TinyWan()
	norm.LatentsMean = []float64{-0.7571, 0.9653, 1.5508, -0.2921}
	norm.LatentsStd = []float64{2.8184, 1.2196, 3.2687, 0.4765}
	close := func(got, want float64) bool { return math.Abs(got-want) <= 1e-7*(1+math.Abs(want)) }

	// The decoder's input mapping, and the decoder using it: decoding z
	// with the statistics is decoding the mapped z without them.
	decN, err := NewDecoder(nn.Random(1), norm)
	if err != nil {
		t.Fatal(err)
	}
	decP, err := NewDecoder(nn.Random(1), plain)
	if err != nil {
		t.Fatal(err)
	}
	z := randTensor(5, 1, 4, 2, 2, 3)
	x, err := decN.unscale(z)
	if err != nil {
		t.Fatal(err)
	}
	plane := 2 * 2 * 3
	for i, v := range z.Float32s() {
		c := i / plane
		want := float64(v)/(1/norm.LatentsStd[c]) + norm.LatentsMean[c]
		if g := float64(x.Float32s()[i]); !close(g, want) {
			t.Fatalf("decoder input %d (channel %d) = %v, want %v", i, c, g, want)
		}
	}
	yN, err := decN.Decode(ctx, z)
	if err != nil {
		t.Fatal(err)
	}
	yP, err := decP.Decode(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	for i := range yN.Float32s() {
		if yN.Float32s()[i] != yP.Float32s()[i] {
			t.Fatalf("pixel %d: %v decoded with statistics, %v from the mapped latents", i, yN.Float32s()[i], yP.Float32s()[i])
		}
	}

	// The encoder's output mapping, and the round trip back through the
	// decoder's: (μ − mean)/std, then ·std + mean, is μ again.
	encN, err := NewEncoder(nn.Random(1), norm)
	if err != nil {
		t.Fatal(err)
	}
	encP, err := NewEncoder(nn.Random(1), plain)
	if err != nil {
		t.Fatal(err)
	}
	px := randTensor(6, 1, 3, 5, 16, 24)
	zn, err := encN.Encode(ctx, px)
	if err != nil {
		t.Fatal(err)
	}
	mu, err := encP.Encode(ctx, px)
	if err != nil {
		t.Fatal(err)
	}
	plane = zn.NumElements() / 4
	for i, v := range mu.Float32s() {
		c := i / plane
		want := (float64(v) - norm.LatentsMean[c]) * (1 / norm.LatentsStd[c])
		if g := float64(zn.Float32s()[i]); !close(g, want) {
			t.Fatalf("encoded %d (channel %d) = %v, want %v", i, c, g, want)
		}
	}
	back, err := decN.unscale(zn)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range mu.Float32s() {
		// Two float32 roundings, each scaled by at most std/1 on the way back.
		if g := float64(back.Float32s()[i]); math.Abs(g-float64(v)) > 4e-7*(1+math.Abs(float64(v))) {
			t.Fatalf("round trip %d: %v, want %v", i, g, v)
		}
	}
}
