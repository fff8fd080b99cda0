package vision

import (
	"fmt"
	"image"
	"image/color"
	"image/color/palette"
	"image/draw"
	"image/gif"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/omniflow-go/omniflow/tensor"
)

// Layout says where the channel axis is.
type Layout int

const (
	// CHW is [C, H, W] per image ([T, C, H, W] for video), PyTorch's.
	CHW Layout = iota
	// HWC is [H, W, C] per image ([T, H, W, C] for video).
	HWC
)

// Range says how values map to 0..255.
type Range int

const (
	// Unit is [0, 1]: 8-bit value round(255·x).
	Unit Range = iota
	// Signed is [−1, 1] (a VAE's output): 8-bit value round(255·(x+1)/2).
	Signed
)

// ImageOptions say how to read an image tensor. Values outside the range
// are clipped and NaN becomes 0. A uint8 tensor is taken as 0..255 and
// Range is ignored. Channels may be 3 (RGB) or 1 (gray).
type ImageOptions struct {
	Layout Layout
	Range  Range
}

// ToImages converts an image tensor (rank 3) or a video tensor (rank 4)
// to 8-bit images, one per frame.
func ToImages(t *tensor.Tensor, o ImageOptions) ([]*image.NRGBA, error) {
	if !t.OnHost() {
		return nil, fmt.Errorf("%w: %v is not in host memory", ErrShape, t)
	}
	s := t.Shape()
	if len(s) != 3 && len(s) != 4 {
		return nil, fmt.Errorf("%w: want an image [3,H,W]/[H,W,3] or a video [T,...], got %v", ErrShape, s)
	}
	frames := 1
	if len(s) == 4 {
		frames = s[0]
	}
	fs := s[len(s)-3:]
	var C, H, W int
	switch o.Layout {
	case CHW:
		C, H, W = fs[0], fs[1], fs[2]
	case HWC:
		H, W, C = fs[0], fs[1], fs[2]
	default:
		return nil, fmt.Errorf("vision: unknown layout %d", o.Layout)
	}
	if C != 3 && C != 1 {
		return nil, fmt.Errorf("%w: %v with layout %v has %d channels, want 3 or 1", ErrShape, s, o.Layout, C)
	}
	if frames < 1 || H < 1 || W < 1 || int64(H)*int64(W) > DefaultMaxPixels {
		return nil, fmt.Errorf("%w: %v", ErrShape, s)
	}
	if o.Range != Unit && o.Range != Signed {
		return nil, fmt.Errorf("vision: unknown range %d", o.Range)
	}
	var vals []float32
	var bytes []uint8
	switch t.DType() {
	case tensor.Uint8:
		c, err := t.Contiguous()
		if err != nil {
			return nil, err
		}
		defer c.Release()
		bytes = c.Uint8s()
	default:
		if !t.DType().IsFloat() {
			return nil, fmt.Errorf("%w: dtype %v, want a float or uint8", ErrShape, t.DType())
		}
		c, err := t.ConvertTo(tensor.Float32)
		if err != nil {
			return nil, err
		}
		defer c.Release()
		vals = c.Float32s()
	}
	to8 := func(i int) uint8 {
		if bytes != nil {
			return bytes[i]
		}
		v := float64(vals[i])
		if o.Range == Signed {
			v = (v + 1) / 2
		}
		v = math.Round(v * 255)
		switch {
		case !(v >= 0): // also NaN
			return 0
		case v > 255:
			return 255
		}
		return uint8(v)
	}
	frameLen := C * H * W
	out := make([]*image.NRGBA, frames)
	for f := range frames {
		img := image.NewNRGBA(image.Rect(0, 0, W, H))
		base := f * frameLen
		for y := range H {
			for x := range W {
				p := img.Pix[y*img.Stride+4*x : y*img.Stride+4*x+4]
				for c := range 3 {
					cc := min(c, C-1) // gray: one channel for all three
					var i int
					if o.Layout == CHW {
						i = base + (cc*H+y)*W + x
					} else {
						i = base + (y*W+x)*C + cc
					}
					p[c] = to8(i)
				}
				p[3] = 255
			}
		}
		out[f] = img
	}
	return out, nil
}

func (l Layout) String() string {
	if l == HWC {
		return "HWC"
	}
	return "CHW"
}

// WritePNG encodes an image tensor [3,H,W] or [H,W,3] (per o.Layout) as
// an 8-bit RGB PNG.
func WritePNG(w io.Writer, t *tensor.Tensor, o ImageOptions) error {
	if t.Rank() != 3 {
		return fmt.Errorf("%w: WritePNG wants one image, got %v", ErrShape, t.Shape())
	}
	imgs, err := ToImages(t, o)
	if err != nil {
		return err
	}
	return png.Encode(w, imgs[0])
}

// WritePNGFrames writes each frame of a video tensor [T,3,H,W] or
// [T,H,W,3] to dir/prefix_0000.png, dir/prefix_0001.png, ... and returns
// the paths.
func WritePNGFrames(dir, prefix string, video *tensor.Tensor, o ImageOptions) ([]string, error) {
	if video.Rank() != 4 {
		return nil, fmt.Errorf("%w: WritePNGFrames wants a video [T,...], got %v", ErrShape, video.Shape())
	}
	imgs, err := ToImages(video, o)
	if err != nil {
		return nil, err
	}
	paths := make([]string, len(imgs))
	for i, img := range imgs {
		paths[i] = filepath.Join(dir, fmt.Sprintf("%s_%04d.png", prefix, i))
		if err := writeFile(paths[i], func(w io.Writer) error { return png.Encode(w, img) }); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// PaletteKind chooses the GIF palette.
type PaletteKind int

const (
	// MedianCut computes one 256-colour palette for the whole video by
	// median cut (MedianCutPalette): exact when the video has at most 256
	// colours, and shared by every frame so colours do not flicker.
	MedianCut PaletteKind = iota
	// Plan9 is the fixed 256-colour palette.Plan9.
	Plan9
)

// GIFOptions configure WriteGIF.
type GIFOptions struct {
	ImageOptions
	Palette PaletteKind
	// NoDither maps each pixel to the nearest palette colour; by default
	// the quantization error is diffused (image/draw's FloydSteinberg).
	NoDither bool
	// Delay per frame in hundredths of a second (default 10: 10 fps).
	Delay int
	// LoopCount as in image/gif: 0 loops forever, -1 plays once.
	LoopCount int
}

// WriteGIF encodes a video tensor [T,3,H,W] or [T,H,W,3] as an animated
// GIF (an image tensor is one frame). Frames are quantized to one global
// palette (o.Palette) with Floyd–Steinberg dithering unless o.NoDither.
func WriteGIF(w io.Writer, video *tensor.Tensor, o GIFOptions) error {
	imgs, err := ToImages(video, o.ImageOptions)
	if err != nil {
		return err
	}
	if o.Delay == 0 {
		o.Delay = 10
	}
	if o.Delay < 0 || o.Delay > math.MaxUint16 || o.LoopCount < -1 {
		return fmt.Errorf("vision: GIF delay %d, loop count %d", o.Delay, o.LoopCount)
	}
	var pal color.Palette
	switch o.Palette {
	case MedianCut:
		pal = MedianCutPalette(imgs, 256)
	case Plan9:
		pal = palette.Plan9
	default:
		return fmt.Errorf("vision: unknown palette %d", o.Palette)
	}
	g := &gif.GIF{LoopCount: o.LoopCount, Config: image.Config{ColorModel: pal, Width: imgs[0].Rect.Dx(), Height: imgs[0].Rect.Dy()}}
	var drawer draw.Drawer = draw.FloydSteinberg
	if o.NoDither {
		drawer = draw.Src
	}
	for _, img := range imgs {
		p := image.NewPaletted(img.Rect, pal)
		drawer.Draw(p, img.Rect, img, image.Point{})
		g.Image = append(g.Image, p)
		g.Delay = append(g.Delay, o.Delay)
	}
	return gif.EncodeAll(w, g)
}
