package vision

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // image.Decode reads JPEG
	_ "image/png"  // and PNG
	"io"
	"os"

	"github.com/omniflow-go/omniflow/tensor"
)

// Errors for errors.Is.
var (
	// ErrTooLarge is an image beyond the decoder's pixel or byte limit.
	ErrTooLarge = errors.New("vision: image too large")
	// ErrShape is a tensor of the wrong rank, channels or size.
	ErrShape = errors.New("vision: bad tensor shape")
)

// Limits of Load.
const (
	DefaultMaxPixels = 1 << 26 // 8192 × 8192
	maxFileBytes     = 1 << 30
)

// LoadOption configures Load.
type LoadOption func(*loadConfig)

type loadConfig struct{ maxPixels int }

// WithMaxPixels sets the largest width × height Load decodes (default
// DefaultMaxPixels).
func WithMaxPixels(n int) LoadOption { return func(c *loadConfig) { c.maxPixels = n } }

// Load decodes a PNG or JPEG image (image.Decode). The header's dimensions
// are checked against the pixel limit before the pixels are decoded, so a
// small file that claims a huge image is an error, not an allocation.
func Load(r io.Reader, opts ...LoadOption) (image.Image, error) {
	c := loadConfig{maxPixels: DefaultMaxPixels}
	for _, o := range opts {
		o(&c)
	}
	data, err := io.ReadAll(io.LimitReader(r, maxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%w: file larger than %d bytes", ErrTooLarge, maxFileBytes)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("vision: decoding image header: %w", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("vision: %s image of %d×%d", format, cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > int64(c.maxPixels) {
		return nil, fmt.Errorf("%w: %s image of %d×%d pixels, limit %d", ErrTooLarge, format, cfg.Width, cfg.Height, c.maxPixels)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("vision: decoding %s image: %w", format, err)
	}
	return img, nil
}

// LoadFile is Load on a file.
func LoadFile(path string, opts ...LoadOption) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := Load(f, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// ToTensor returns img as RGB float32 [3, H, W] in [0, 1]. Transparent
// pixels are composited over white, as Hugging Face's convert_rgb does
// before Qwen2-VL's and CLIP's preprocessing.
func ToTensor(img image.Image) (*tensor.Tensor, error) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("%w: empty image %v", ErrShape, b)
	}
	plane := w * h
	out := make([]float32, 3*plane)
	r, g, bl := out[:plane], out[plane:2*plane], out[2*plane:]
	lut := &unitLUT
	switch src := img.(type) {
	case *image.NRGBA:
		for y := range h {
			row := src.Pix[y*src.Stride : y*src.Stride+4*w]
			for x := range w {
				p := row[4*x : 4*x+4]
				i := y*w + x
				if p[3] == 255 {
					r[i], g[i], bl[i] = lut[p[0]], lut[p[1]], lut[p[2]]
					continue
				}
				a := lut[p[3]]
				r[i] = lut[p[0]]*a + 1 - a
				g[i] = lut[p[1]]*a + 1 - a
				bl[i] = lut[p[2]]*a + 1 - a
			}
		}
	case *image.YCbCr:
		for y := range h {
			for x := range w {
				yi := src.YOffset(b.Min.X+x, b.Min.Y+y)
				ci := src.COffset(b.Min.X+x, b.Min.Y+y)
				rr, gg, bb := color.YCbCrToRGB(src.Y[yi], src.Cb[ci], src.Cr[ci])
				i := y*w + x
				r[i], g[i], bl[i] = lut[rr], lut[gg], lut[bb]
			}
		}
	case *image.Gray:
		for y := range h {
			row := src.Pix[y*src.Stride : y*src.Stride+w]
			for x, v := range row {
				i := y*w + x
				r[i], g[i], bl[i] = lut[v], lut[v], lut[v]
			}
		}
	default:
		// Premultiplied 16-bit: over white is c + (1 - a).
		const inv16 = 1.0 / 0xffff
		for y := range h {
			for x := range w {
				cr, cg, cb, ca := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
				white := 1 - float32(ca)*inv16
				i := y*w + x
				r[i] = float32(cr)*inv16 + white
				g[i] = float32(cg)*inv16 + white
				bl[i] = float32(cb)*inv16 + white
			}
		}
	}
	return tensor.FromFloat32(out, 3, h, w)
}

// unitLUT[v] is v/255, correctly rounded.
var unitLUT = func() (t [256]float32) {
	for i := range t {
		t[i] = float32(i) / 255
	}
	return t
}()

// CLIP's (and Qwen2-VL's) normalization constants.
var (
	CLIPMean = [3]float32{0.48145466, 0.4578275, 0.40821073}
	CLIPStd  = [3]float32{0.26862954, 0.26130258, 0.27577711}
)

// Normalize sets x = (x − mean[c]) / std[c] in place, for a contiguous
// float32 tensor [3, H, W] or [T, 3, H, W].
func Normalize(t *tensor.Tensor, mean, std [3]float32) error {
	if t.DType() != tensor.Float32 || !t.IsContiguous() || !t.OnHost() {
		return fmt.Errorf("%w: Normalize wants a contiguous host float32 tensor, got %v", ErrShape, t)
	}
	s := t.Shape()
	var frames int
	switch {
	case len(s) == 3 && s[0] == 3:
		frames = 1
	case len(s) == 4 && s[1] == 3:
		frames = s[0]
	default:
		return fmt.Errorf("%w: Normalize wants [3,H,W] or [T,3,H,W], got %v", ErrShape, s)
	}
	for c := range 3 {
		if !(std[c] > 0) {
			return fmt.Errorf("vision: std[%d] = %v must be positive", c, std[c])
		}
	}
	v := t.Float32s()
	plane := s[len(s)-1] * s[len(s)-2]
	for f := range frames {
		for c := range 3 {
			m, inv := mean[c], 1/std[c]
			p := v[(f*3+c)*plane : (f*3+c+1)*plane]
			for i := range p {
				p[i] = (p[i] - m) * inv
			}
		}
	}
	return nil
}
