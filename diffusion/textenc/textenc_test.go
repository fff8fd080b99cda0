package textenc

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omniflow-go/omniflow/diffusion/internal/weighttest"
	"github.com/omniflow-go/omniflow/operators/nn"
	"github.com/omniflow-go/omniflow/tensor"
	"github.com/omniflow-go/omniflow/tensor/safetensors"
)

// bucketRef is Hugging Face's T5Attention._relative_position_bucket with
// bidirectional=True, evaluated in float64.
func bucketRef(rel, numBuckets, maxDistance int) int {
	nb := numBuckets / 2
	out := 0
	if rel > 0 {
		out += nb
	}
	rel = int(math.Abs(float64(rel)))
	maxExact := nb / 2
	if rel < maxExact {
		return out + rel
	}
	large := maxExact + int(math.Log(float64(rel)/float64(maxExact))/math.Log(float64(maxDistance)/float64(maxExact))*float64(nb-maxExact))
	return out + min(large, nb-1)
}

func TestRelativePositionBucket(t *testing.T) {
	// Hand values for 32 buckets, max distance 128 (T5's defaults): keys
	// before the query use buckets 0..15, after it 16..31; distances 0..7
	// are exact; 8 starts the log range; 128 and beyond saturate.
	for _, c := range []struct{ rel, want int }{
		{0, 0}, {-1, 1}, {-7, 7}, {1, 17}, {7, 23},
		{-8, 8}, {8, 24}, {-12, 9}, {-16, 10}, {-127, 15}, {-128, 15}, {-1000, 15}, {1000, 31},
	} {
		if got := RelativePositionBucket(c.rel, 32, 128); got != c.want {
			t.Errorf("bucket(%d) = %d, want %d", c.rel, got, c.want)
		}
	}
	for _, cfg := range []struct{ buckets, maxDist int }{{32, 128}, {16, 64}, {64, 256}, {8, 20}} {
		for rel := -600; rel <= 600; rel++ {
			if got, want := RelativePositionBucket(rel, cfg.buckets, cfg.maxDist), bucketRef(rel, cfg.buckets, cfg.maxDist); got != want {
				t.Errorf("buckets %d, max %d: bucket(%d) = %d, float64 reference %d", cfg.buckets, cfg.maxDist, rel, got, want)
			}
		}
	}
}

func tinyCfg() Config {
	c := Tiny()
	c.Dim, c.Heads, c.FFN, c.TextLen = 32, 2, 48, 12
	return c
}

// refEncode is the T5 encoder in float64, from the recorded weights.
func refEncode(w map[string]*tensor.Tensor, cfg Config, ids []int32, mask []bool) []float64 {
	cfg = cfg.withDefaults()
	l, d, h, hd := len(ids), cfg.Dim, cfg.Heads, cfg.HeadDim
	get := func(name string) []float64 {
		t := w[name]
		out := make([]float64, t.NumElements())
		for i, v := range t.Float32s() {
			out[i] = float64(v)
		}
		return out
	}
	lin := func(x []float64, n, in int, wname string) []float64 {
		W := get(wname)
		out := len(W) / in
		y := make([]float64, n*out)
		for r := range n {
			for o := range out {
				s := 0.0
				for i := range in {
					s += x[r*in+i] * W[o*in+i]
				}
				y[r*out+o] = s
			}
		}
		return y
	}
	rms := func(x []float64, wname string) []float64 {
		g := get(wname)
		y := make([]float64, len(x))
		for r := 0; r < len(x)/d; r++ {
			ss := 0.0
			for _, v := range x[r*d : (r+1)*d] {
				ss += v * v
			}
			inv := 1 / math.Sqrt(ss/float64(d)+float64(cfg.Eps))
			for i := range d {
				y[r*d+i] = x[r*d+i] * inv * g[i]
			}
		}
		return y
	}
	emb := get("shared.weight")
	x := make([]float64, l*d)
	for i, id := range ids {
		copy(x[i*d:(i+1)*d], emb[int(id)*d:(int(id)+1)*d])
	}
	var bias []float64
	for layer := range cfg.Layers {
		p := "encoder.block." + string(rune('0'+layer)) + "."
		if layer == 0 || cfg.PerLayerBias {
			bias = get(p + "layer.0.SelfAttention.relative_attention_bias.weight")
		}
		hN := rms(x, p+"layer.0.layer_norm.weight")
		q := lin(hN, l, d, p+"layer.0.SelfAttention.q.weight")
		k := lin(hN, l, d, p+"layer.0.SelfAttention.k.weight")
		v := lin(hN, l, d, p+"layer.0.SelfAttention.v.weight")
		att := make([]float64, l*h*hd)
		for head := range h {
			for i := range l {
				scores := make([]float64, l)
				mx := math.Inf(-1)
				for j := range l {
					if !mask[j] {
						scores[j] = math.Inf(-1)
						continue
					}
					s := 0.0
					for e := range hd {
						s += q[i*h*hd+head*hd+e] * k[j*h*hd+head*hd+e]
					}
					s += bias[bucketRef(j-i, cfg.Buckets, cfg.MaxDistance)*h+head]
					scores[j] = s
					mx = math.Max(mx, s)
				}
				z := 0.0
				for j := range scores {
					scores[j] = math.Exp(scores[j] - mx)
					z += scores[j]
				}
				for j := range l {
					for e := range hd {
						att[i*h*hd+head*hd+e] += scores[j] / z * v[j*h*hd+head*hd+e]
					}
				}
			}
		}
		o := lin(att, l, h*hd, p+"layer.0.SelfAttention.o.weight")
		for i := range x {
			x[i] += o[i]
		}
		hN = rms(x, p+"layer.1.layer_norm.weight")
		g := lin(hN, l, d, p+"layer.1.DenseReluDense.wi_0.weight")
		u := lin(hN, l, d, p+"layer.1.DenseReluDense.wi_1.weight")
		for i := range g {
			a := g[i]
			g[i] = 0.5 * a * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(a+0.044715*a*a*a))) * u[i]
		}
		f := lin(g, l, cfg.FFN, p+"layer.1.DenseReluDense.wo.weight")
		for i := range x {
			x[i] += f[i]
		}
	}
	x = rms(x, "encoder.final_layer_norm.weight")
	for i, m := range mask {
		if !m {
			clear(x[i*d : (i+1)*d])
		}
	}
	return x
}

func TestEncoderMatchesFloat64Reference(t *testing.T) {
	for _, perLayer := range []bool{true, false} {
		name := "t5-shared-bias"
		if perLayer {
			name = "umt5-per-layer-bias"
		}
		t.Run(name, func(t *testing.T) {
			cfg := tinyCfg()
			cfg.PerLayerBias = perLayer
			rec := weighttest.NewRecorder(3)
			enc, err := New(rec, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := rec.NumParams(), cfg.NumParams(); got != want {
				t.Errorf("NumParams() = %d, the builder asked for %d", want, got)
			}
			prompts := []string{"a red fox", "snow falling on a quiet street"}
			out, err := enc.Encode(context.Background(), prompts)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Release()
			ids, mask, lens, _ := enc.Tokenize(prompts)
			l := cfg.TextLen
			if lens[0] != len("a red fox")+1 || lens[1] != l {
				t.Errorf("lens %v (the second prompt is truncated to %d)", lens, l)
			}
			got := out.States.Float32s()
			for b := range prompts {
				want := refEncode(rec.Weights(), cfg, ids.Int32s()[b*l:(b+1)*l], mask[b*l:(b+1)*l])
				for i, w := range want {
					g := float64(got[b*l*cfg.Dim+i])
					// float32 kernels against float64: a few ulps per op over
					// two layers of width 32; 1e-4 relative to the unit-RMS
					// output is ample and far below any real bug.
					if math.Abs(g-w) > 1e-4*(1+math.Abs(w)) {
						t.Fatalf("prompt %d: element %d = %v, reference %v", b, i, g, w)
					}
				}
			}
		})
	}
}

func TestPaddingDoesNotLeak(t *testing.T) {
	cfg := tinyCfg()
	enc, err := New(nn.Random(9), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	alone, err := enc.Encode(ctx, []string{"cat"})
	if err != nil {
		t.Fatal(err)
	}
	both, err := enc.Encode(ctx, []string{"a much longer prompt here", "cat"})
	if err != nil {
		t.Fatal(err)
	}
	l, d := cfg.TextLen, cfg.Dim
	a, b := alone.States.Float32s(), both.States.Float32s()[l*d:]
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-5 {
			t.Fatalf("element %d: %v alone, %v in a batch", i, a[i], b[i])
		}
		if pos := i / d; pos >= alone.Lens[0] && a[i] != 0 {
			t.Fatalf("padding position %d is %v, want 0", pos, a[i])
		}
	}
	one, err := both.Slice(1, 2)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := Concat(alone, one)
	if err != nil {
		t.Fatal(err)
	}
	if cat.States.Dim(0) != 2 || len(cat.Mask) != 2*l || cat.Lens[0] != cat.Lens[1] {
		t.Errorf("concat: %v %d %v", cat.States.Shape(), len(cat.Mask), cat.Lens)
	}
}

func TestTokenizeTruncatesKeepingEOS(t *testing.T) {
	enc, err := New(nn.Random(1), tinyCfg())
	if err != nil {
		t.Fatal(err)
	}
	ids, mask, lens, err := enc.Tokenize([]string{strings.Repeat("x", 40), ""})
	if err != nil {
		t.Fatal(err)
	}
	l := enc.Cfg.TextLen
	row := ids.Int32s()[:l]
	if row[l-1] != enc.eos || row[0] != 'x' || lens[0] != l {
		t.Errorf("truncated row %v lens %v", row, lens)
	}
	empty := ids.Int32s()[l:]
	if empty[0] != enc.eos || empty[1] != enc.pad || lens[1] != 1 || !mask[l] || mask[l+1] {
		t.Errorf("empty prompt row %v mask %v", empty, mask[l:])
	}
}

func TestCheckpointLoading(t *testing.T) {
	cfg := tinyCfg()
	rec := weighttest.NewRecorder(5)
	ref, err := New(rec, cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, w map[string]*tensor.Tensor) *safetensors.File {
		path := filepath.Join(dir, name)
		if err := safetensors.WriteFile(path, w, nil); err != nil {
			t.Fatal(err)
		}
		f, err := safetensors.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	f := write("ok.safetensors", rec.Weights())
	enc, err := New(nn.Checkpoint(f), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, _ := ref.Encode(ctx, []string{"hello"})
	b, _ := enc.Encode(ctx, []string{"hello"})
	for i, v := range a.States.Float32s() {
		if b.States.Float32s()[i] != v {
			t.Fatalf("element %d: %v from the checkpoint, %v from the source", i, b.States.Float32s()[i], v)
		}
	}
	const victim = "encoder.block.1.layer.1.DenseReluDense.wi_1.weight"
	for _, c := range []struct {
		name string
		w    map[string]*tensor.Tensor
	}{
		{"missing", weighttest.Without(rec.Weights(), victim)},
		{"misshaped", weighttest.Reshaped(rec.Weights(), victim, cfg.FFN, cfg.Dim+1)},
	} {
		_, err := New(nn.Checkpoint(write(c.name+".safetensors", c.w)), cfg)
		if !errors.Is(err, nn.ErrWeight) || !strings.Contains(err.Error(), victim) {
			t.Errorf("%s weight: error %v, want nn.ErrWeight naming %s", c.name, err, victim)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*Config)
	}{
		{"zero dim", func(c *Config) { c.Dim = 0 }},
		{"odd buckets", func(c *Config) { c.Buckets = 7 }},
		{"no text", func(c *Config) { c.TextLen = 0 }},
		{"small vocab", func(c *Config) { c.Vocab = 100 }},
	} {
		cfg := tinyCfg()
		c.edit(&cfg)
		if _, err := New(nn.Random(1), cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", c.name, err)
		}
	}
	if n := UMT5XXL().NumParams(); n < 5.5e9 || n > 6e9 {
		t.Errorf("umt5-xxl encoder has %d parameters, want about 5.7e9", n)
	}
}
