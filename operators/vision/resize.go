package vision

import (
	"fmt"
	"math"

	"github.com/omniflow-go/omniflow/tensor"
)

// Filter is a resampling kernel for Resize.
type Filter int

const (
	// Bicubic is Keys' cubic convolution with a = −0.5 (PIL's BICUBIC,
	// which Qwen2-VL's and CLIP's image processors use).
	Bicubic Filter = iota
	// Bilinear is the triangle filter (PIL's BILINEAR).
	Bilinear
)

func (f Filter) String() string {
	switch f {
	case Bicubic:
		return "bicubic"
	case Bilinear:
		return "bilinear"
	}
	return fmt.Sprintf("Filter(%d)", int(f))
}

func (f Filter) support() float64 {
	if f == Bilinear {
		return 1
	}
	return 2
}

func (f Filter) eval(x float64) float64 {
	x = math.Abs(x)
	if f == Bilinear {
		if x < 1 {
			return 1 - x
		}
		return 0
	}
	const a = -0.5
	switch {
	case x < 1:
		return ((a+2)*x-(a+3))*x*x + 1
	case x < 2:
		return (((x-5)*x+8)*x - 4) * a
	}
	return 0
}

// coeffs are the normalized weights of each output position along one
// axis: output i = Σ_k w[i][k] · input[start[i]+k].
type coeffs struct {
	start []int
	w     [][]float32
}

// resampleCoeffs follows PIL's precompute_coeffs: output pixel i is
// centred at input coordinate (i + 0.5)·scale (pixel centres at +0.5);
// when shrinking, the kernel is stretched by the scale (antialiasing);
// taps outside the image are dropped and the rest renormalized.
func resampleCoeffs(in, out int, f Filter) coeffs {
	scale := float64(in) / float64(out)
	fscale := math.Max(scale, 1)
	support := f.support() * fscale
	c := coeffs{start: make([]int, out), w: make([][]float32, out)}
	for i := range out {
		center := (float64(i) + 0.5) * scale
		lo := max(int(center-support+0.5), 0)
		hi := min(int(center+support+0.5), in)
		ws := make([]float64, hi-lo)
		var sum float64
		for k := range ws {
			ws[k] = f.eval((float64(lo+k) - center + 0.5) / fscale)
			sum += ws[k]
		}
		c.start[i] = lo
		c.w[i] = make([]float32, len(ws))
		for k, v := range ws {
			if sum != 0 {
				v /= sum
			}
			c.w[i][k] = float32(v)
		}
	}
	return c
}

// Resize resamples a float32 tensor [C, H, W] (or [T, C, H, W], frame by
// frame) to height h and width w with a separable filter, horizontal pass
// first, in float32 without rounding to 8 bits (PIL rounds to uint8 after
// each pass; results differ from PIL by at most about half a level).
// Bicubic can overshoot the input range near edges, as in PIL before its
// clipping.
func Resize(t *tensor.Tensor, h, w int, f Filter) (*tensor.Tensor, error) {
	if t.DType() != tensor.Float32 || !t.OnHost() {
		return nil, fmt.Errorf("%w: Resize wants a host float32 tensor, got %v", ErrShape, t)
	}
	s := t.Shape()
	if len(s) != 3 && len(s) != 4 {
		return nil, fmt.Errorf("%w: Resize wants [C,H,W] or [T,C,H,W], got %v", ErrShape, s)
	}
	if f != Bicubic && f != Bilinear {
		return nil, fmt.Errorf("vision: unknown filter %v", f)
	}
	inH, inW := s[len(s)-2], s[len(s)-1]
	if h < 1 || w < 1 || inH < 1 || inW < 1 || int64(h)*int64(w) > DefaultMaxPixels {
		return nil, fmt.Errorf("%w: resize %d×%d to %d×%d", ErrShape, inH, inW, h, w)
	}
	src, err := t.Contiguous()
	if err != nil {
		return nil, err
	}
	defer src.Release()
	planes := 1
	for _, d := range s[:len(s)-2] {
		planes *= d
	}
	outShape := append(append([]int{}, s[:len(s)-2]...), h, w)
	out := make([]float32, planes*h*w)
	in := src.Float32s()
	cx, cy := resampleCoeffs(inW, w, f), resampleCoeffs(inH, h, f)
	tmp := make([]float32, inH*w)
	for p := range planes {
		plane := in[p*inH*inW : (p+1)*inH*inW]
		// Horizontal: tmp[y][i] = Σ plane[y][start+k]·w[i][k].
		for y := range inH {
			row := plane[y*inW : (y+1)*inW]
			dst := tmp[y*w : (y+1)*w]
			for i := range w {
				ws := cx.w[i]
				xs := row[cx.start[i] : cx.start[i]+len(ws)]
				var acc float32
				for k, v := range ws {
					acc += v * xs[k]
				}
				dst[i] = acc
			}
		}
		// Vertical: out[j][x] = Σ tmp[start+k][x]·w[j][k], row at a time.
		dstPlane := out[p*h*w : (p+1)*h*w]
		for j := range h {
			dst := dstPlane[j*w : (j+1)*w]
			for k, v := range cy.w[j] {
				srcRow := tmp[(cy.start[j]+k)*w : (cy.start[j]+k+1)*w]
				for x := range dst {
					dst[x] += v * srcRow[x]
				}
			}
		}
	}
	return tensor.FromFloat32(out, outShape...)
}

// SmartResizeConfig bounds Qwen2-VL's smart resize.
type SmartResizeConfig struct {
	Factor    int // sides become multiples of this (patch × merge = 28)
	MinPixels int // the area is raised to at least this (56·56)
	MaxPixels int // and lowered to at most this (28·28·16384)
}

// DefaultSmartResize is Qwen2-VL's and Qwen2.5-Omni's image setting.
func DefaultSmartResize() SmartResizeConfig {
	return SmartResizeConfig{Factor: 28, MinPixels: 56 * 56, MaxPixels: 28 * 28 * 16384}
}

// SmartResize returns Qwen2-VL's target size for an image of h × w
// (qwen_vl_utils / transformers smart_resize): each side rounded to the
// nearest multiple of Factor (ties to even, as Python's round), at least
// Factor; if the area is then above MaxPixels both sides shrink by
// √(h·w/MaxPixels) and round down to multiples of Factor, if below
// MinPixels they grow by √(MinPixels/(h·w)) and round up. The aspect
// ratio is kept within the rounding; more than 200:1 is an error.
func SmartResize(h, w int, cfg SmartResizeConfig) (int, int, error) {
	if cfg.Factor < 1 || cfg.MinPixels < 0 || cfg.MaxPixels < cfg.Factor*cfg.Factor || cfg.MinPixels > cfg.MaxPixels {
		return 0, 0, fmt.Errorf("vision: smart resize config %+v", cfg)
	}
	if h < 1 || w < 1 {
		return 0, 0, fmt.Errorf("%w: image of %d×%d", ErrShape, h, w)
	}
	if float64(max(h, w))/float64(min(h, w)) > 200 {
		return 0, 0, fmt.Errorf("%w: aspect ratio of %d×%d exceeds 200", ErrShape, h, w)
	}
	f := float64(cfg.Factor)
	hf, wf := float64(h), float64(w)
	hb := max(cfg.Factor, int(math.RoundToEven(hf/f))*cfg.Factor)
	wb := max(cfg.Factor, int(math.RoundToEven(wf/f))*cfg.Factor)
	switch {
	case hb*wb > cfg.MaxPixels:
		beta := math.Sqrt(hf * wf / float64(cfg.MaxPixels))
		hb = max(cfg.Factor, int(math.Floor(hf/beta/f))*cfg.Factor)
		wb = max(cfg.Factor, int(math.Floor(wf/beta/f))*cfg.Factor)
	case hb*wb < cfg.MinPixels:
		beta := math.Sqrt(float64(cfg.MinPixels) / (hf * wf))
		hb = int(math.Ceil(hf*beta/f)) * cfg.Factor
		wb = int(math.Ceil(wf*beta/f)) * cfg.Factor
	}
	return hb, wb, nil
}
