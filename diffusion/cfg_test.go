package diffusion

import (
	"math"
	"testing"
)

func TestGuideTwoPass(t *testing.T) {
	// noise_pred = uncond + s·(cond − uncond) (diffusers' WanPipeline).
	for _, c := range []struct {
		scale float64
		want  []float32
	}{
		{1, []float32{1, 2, -3}},    // the conditional prediction
		{0, []float32{0.5, 0, 1}},   // the unconditional one
		{4, []float32{2.5, 8, -15}}, // 0.5 + 4·0.5, 0 + 4·2, 1 + 4·(−4)
	} {
		cond := []float32{1, 2, -3}
		GuideTwoPass(cond, []float32{0.5, 0, 1}, c.scale)
		for i, w := range c.want {
			if cond[i] != w {
				t.Errorf("scale %v: %v, want %v", c.scale, cond, c.want)
				break
			}
		}
	}
}

func TestGuideZImage(t *testing.T) {
	// pred = pos + s·(pos − neg); with normalization k, ‖pred‖ ≤ k·‖pos‖.
	// pos (3, 4) has norm 5; with neg 0 and s = 1, pred = (6, 8), norm 10.
	for _, c := range []struct {
		scale, norm float64
		want        [2]float64
		factor      float64
	}{
		{1, 0, [2]float64{6, 8}, 1},        // off
		{1, 1, [2]float64{3, 4}, 0.5},      // capped at ‖pos‖ = 5
		{1, 1.5, [2]float64{4.5, 6}, 0.75}, // capped at 7.5
		{1, 3, [2]float64{6, 8}, 1},        // 10 ≤ 15: untouched
		{0, 1, [2]float64{3, 4}, 1},        // no guidance
	} {
		pos := []float32{3, 4}
		f := GuideZImage(pos, []float32{0, 0}, c.scale, c.norm)
		if math.Abs(f-c.factor) > 1e-12 || math.Abs(float64(pos[0])-c.want[0]) > 1e-6 || math.Abs(float64(pos[1])-c.want[1]) > 1e-6 {
			t.Errorf("scale %v, normalization %v: %v (factor %v), want %v (factor %v)", c.scale, c.norm, pos, f, c.want, c.factor)
		}
	}
}

func TestZImageTruncation(t *testing.T) {
	// Z-Image's t_norm = (1000 − t)/1000: 0 at the start, 1 at the end;
	// guidance stops once t_norm exceeds the truncation.
	for _, c := range []struct {
		trunc, t, want float64
	}{
		{1, 0, 4}, {1, 999, 4}, {0.5, 600, 4}, {0.5, 500, 4}, {0.5, 499, 0}, {0, 1000, 4}, {0, 999, 0},
	} {
		if got := zImageScale(4, c.trunc, c.t); got != c.want {
			t.Errorf("truncation %v at t=%v: scale %v, want %v", c.trunc, c.t, got, c.want)
		}
	}
}
