package vision

import (
	"fmt"
	"image"

	"github.com/omniflow-go/omniflow/tensor"
)

// PatchConfig is the vision encoder's patch geometry.
type PatchConfig struct {
	Patch    int // spatial patch side (14)
	Temporal int // frames per patch (2)
	Merge    int // spatial merge side (2: 2×2 patches become one token)
}

// DefaultPatchConfig is Qwen2-VL's and Qwen2.5-Omni's.
func DefaultPatchConfig() PatchConfig { return PatchConfig{Patch: 14, Temporal: 2, Merge: 2} }

// Patches are flattened patches ready for the vision encoder, and their
// grid (Qwen2-VL's image_grid_thw).
type Patches struct {
	Data                *tensor.Tensor // [GridT·GridH·GridW, C·Temporal·Patch·Patch] float32
	GridT, GridH, GridW int
	Merge               int
}

// NumTokens is the number of LLM tokens the patches become after the
// spatial merge: GridT·GridH·GridW / Merge².
func (p Patches) NumTokens() int { return p.GridT * p.GridH * p.GridW / (p.Merge * p.Merge) }

// Patchify cuts frames [T, C, H, W] (or one image [C, H, W], T = 1) into
// Qwen2-VL's flattened patches. H and W must be multiples of
// Patch·Merge. When T is not a multiple of Temporal the last frame is
// repeated to fill the last temporal patch (so a still image becomes two
// identical frames).
//
// Layout, exactly that of Qwen2VLImageProcessor._preprocess (its reshape
// to [gt, Tp, C, gh/M, M, P, gw/M, M, P] and transpose (0,3,6,4,7,2,1,5,8)),
// with gh = H/P, gw = W/P grid rows and columns, M = Merge, Tp = Temporal:
//
//	row    = ((t·(gh/M) + bh)·(gw/M) + bw)·M² + mh·M + mw
//	column = ((c·Tp + tt)·P + py)·P + px
//	value  = frames[t·Tp + tt][c][(bh·M + mh)·P + py][(bw·M + mw)·P + px]
//
// so rows come in groups of M² patches that form one M×M square (row-major
// inside the square), squares in raster order; within a row, channel is
// slowest, then frame, then the P×P pixels in raster order.
func Patchify(frames *tensor.Tensor, cfg PatchConfig) (Patches, error) {
	if cfg.Patch < 1 || cfg.Temporal < 1 || cfg.Merge < 1 {
		return Patches{}, fmt.Errorf("vision: patch config %+v", cfg)
	}
	if frames.DType() != tensor.Float32 || !frames.OnHost() {
		return Patches{}, fmt.Errorf("%w: Patchify wants a host float32 tensor, got %v", ErrShape, frames)
	}
	s := frames.Shape()
	var T, C, H, W int
	switch len(s) {
	case 3:
		T, C, H, W = 1, s[0], s[1], s[2]
	case 4:
		T, C, H, W = s[0], s[1], s[2], s[3]
	default:
		return Patches{}, fmt.Errorf("%w: Patchify wants [C,H,W] or [T,C,H,W], got %v", ErrShape, s)
	}
	P, M, Tp := cfg.Patch, cfg.Merge, cfg.Temporal
	if T < 1 || C < 1 || H < P*M || W < P*M || H%(P*M) != 0 || W%(P*M) != 0 {
		return Patches{}, fmt.Errorf("%w: %v: T, C ≥ 1 and H, W positive multiples of %d", ErrShape, s, P*M)
	}
	src, err := frames.Contiguous()
	if err != nil {
		return Patches{}, err
	}
	defer src.Release()
	in := src.Float32s()
	gt, gh, gw := (T+Tp-1)/Tp, H/P, W/P
	cols := C * Tp * P * P
	rows := gt * gh * gw
	out := make([]float32, rows*cols)
	frame := func(f int) int { return min(f, T-1) } // repeat the last frame
	row := 0
	for t := range gt {
		for bh := range gh / M {
			for bw := range gw / M {
				for mh := range M {
					for mw := range M {
						dst := out[row*cols : (row+1)*cols]
						y0, x0 := (bh*M+mh)*P, (bw*M+mw)*P
						i := 0
						for c := range C {
							for tt := range Tp {
								plane := in[(frame(t*Tp+tt)*C+c)*H*W:]
								for py := range P {
									copy(dst[i:i+P], plane[(y0+py)*W+x0:])
									i += P
								}
							}
						}
						row++
					}
				}
			}
		}
	}
	data, err := tensor.FromFloat32(out, rows, cols)
	if err != nil {
		return Patches{}, err
	}
	return Patches{Data: data, GridT: gt, GridH: gh, GridW: gw, Merge: M}, nil
}

// ProcessorConfig is the whole image preprocessing of Qwen2-VL's image
// processor.
type ProcessorConfig struct {
	Resize SmartResizeConfig
	Filter Filter
	Mean   [3]float32
	Std    [3]float32
	Patch  PatchConfig
}

// DefaultProcessorConfig is Qwen2.5-Omni's (and Qwen2-VL's) image
// processor: smart resize to multiples of 28 between 56² and 28²·16384
// pixels, bicubic, CLIP mean/std, 14-pixel patches, 2 frames, 2×2 merge.
func DefaultProcessorConfig() ProcessorConfig {
	return ProcessorConfig{Resize: DefaultSmartResize(), Filter: Bicubic, Mean: CLIPMean, Std: CLIPStd, Patch: DefaultPatchConfig()}
}

// Preprocess turns images (one still image, or the frames of a video, all
// of one size) into patches: RGB in [0, 1] (ToTensor), smart resize,
// Resize, Normalize, Patchify. cfg.Resize.Factor must be
// Patch·Merge.
func Preprocess(cfg ProcessorConfig, frames ...image.Image) (Patches, error) {
	if len(frames) == 0 {
		return Patches{}, fmt.Errorf("vision: Preprocess of no images")
	}
	if cfg.Resize.Factor != cfg.Patch.Patch*cfg.Patch.Merge {
		return Patches{}, fmt.Errorf("vision: resize factor %d is not patch %d × merge %d", cfg.Resize.Factor, cfg.Patch.Patch, cfg.Patch.Merge)
	}
	b := frames[0].Bounds()
	h, w, err := SmartResize(b.Dy(), b.Dx(), cfg.Resize)
	if err != nil {
		return Patches{}, err
	}
	var all []float32
	var video *tensor.Tensor
	for i, img := range frames {
		if img.Bounds().Size() != b.Size() {
			return Patches{}, fmt.Errorf("%w: frame %d is %v, frame 0 is %v", ErrShape, i, img.Bounds().Size(), b.Size())
		}
		t, err := ToTensor(img)
		if err != nil {
			return Patches{}, err
		}
		r, err := Resize(t, h, w, cfg.Filter)
		if err != nil {
			return Patches{}, err
		}
		if len(frames) == 1 {
			if video, err = r.Reshape(1, 3, h, w); err != nil {
				return Patches{}, err
			}
			break
		}
		if all == nil {
			all = make([]float32, 0, len(frames)*3*h*w)
		}
		all = append(all, r.Float32s()...)
	}
	if video == nil {
		var err error
		if video, err = tensor.FromFloat32(all, len(frames), 3, h, w); err != nil {
			return Patches{}, err
		}
	}
	if err := Normalize(video, cfg.Mean, cfg.Std); err != nil {
		return Patches{}, err
	}
	return Patchify(video, cfg.Patch)
}
