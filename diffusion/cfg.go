package diffusion

import "math"

// GuideTwoPass combines Wan's two passes in place into cond:
// uncond + scale·(cond − uncond) (diffusers' WanPipeline).
func GuideTwoPass(cond, uncond []float32, scale float64) {
	s := float32(scale)
	for i, c := range cond {
		u := uncond[i]
		cond[i] = u + s*(c-u)
	}
}

// GuideZImage combines Z-Image's batched passes in place into pos, as
// diffusers' ZImagePipeline does per sample: pred = pos + scale·(pos − neg);
// with normalization > 0, pred is then scaled down so that
// ‖pred‖ ≤ normalization·‖pos‖ (its "cfg_normalization"; norms are the
// vector 2-norm over the whole latent, in float64). It returns the factor
// applied (1 when none).
func GuideZImage(pos, neg []float32, scale, normalization float64) float64 {
	var posNorm, predNorm float64
	s := float32(scale)
	for i, p := range pos {
		posNorm += float64(p) * float64(p)
		v := p + s*(p-neg[i])
		pos[i] = v
		predNorm += float64(v) * float64(v)
	}
	if normalization <= 0 {
		return 1
	}
	maxNorm := math.Sqrt(posNorm) * normalization
	if n := math.Sqrt(predNorm); n > maxNorm {
		f := maxNorm / n
		for i := range pos {
			pos[i] = float32(float64(pos[i]) * f)
		}
		return f
	}
	return 1
}

// zImageScale is the guidance scale Z-Image uses at scheduler timestep t:
// 0 once the normalized time (1000 − t)/1000 is past the truncation.
func zImageScale(scale, truncation, t float64) float64 {
	if truncation <= 1 && (1000-t)/1000 > truncation {
		return 0
	}
	return scale
}
