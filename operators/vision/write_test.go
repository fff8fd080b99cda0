package vision

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/omniflow-go/omniflow/tensor"
)

// rgbAt reads pixel (x, y) of a decoded image as 8-bit RGB.
func rgbAt(img image.Image, x, y int) [3]uint8 {
	c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
	return [3]uint8{c.R, c.G, c.B}
}

// testFrame returns an [3,H,W] image in [0,1]: red ramps along x, green
// along y, blue constant 0.25.
func testFrame(h, w int) []float32 {
	v := make([]float32, 3*h*w)
	for y := range h {
		for x := range w {
			v[y*w+x] = float32(x) / float32(w-1)
			v[h*w+y*w+x] = float32(y) / float32(h-1)
			v[2*h*w+y*w+x] = 0.25
		}
	}
	return v
}

func TestWritePNG(t *testing.T) {
	const h, w = 5, 7
	chw := testFrame(h, w)
	want := func(x, y int) [3]uint8 {
		// From the float32 values the tensor holds (5/6 in float32 is
		// just below 212.5/255).
		return [3]uint8{uint8(math.Round(255 * float64(float32(x)/(w-1)))), uint8(math.Round(255 * float64(float32(y)/(h-1)))), 64}
	}
	hwc := make([]float32, len(chw))
	signed := make([]float32, len(chw))
	for c := range 3 {
		for i := range h * w {
			hwc[i*3+c] = chw[c*h*w+i]
		}
	}
	for i, v := range chw {
		signed[i] = 2*v - 1
	}
	tCHW, _ := tensor.FromFloat32(chw, 3, h, w)
	tHWC, _ := tensor.FromFloat32(hwc, h, w, 3)
	tSigned, _ := tensor.FromFloat32(signed, 3, h, w)
	tF16, _ := tCHW.ConvertTo(tensor.Float16)
	for _, tc := range []struct {
		name string
		t    *tensor.Tensor
		o    ImageOptions
		tol  int
	}{
		{"chw unit", tCHW, ImageOptions{Layout: CHW, Range: Unit}, 0},
		{"hwc unit", tHWC, ImageOptions{Layout: HWC, Range: Unit}, 0},
		{"chw signed", tSigned, ImageOptions{Layout: CHW, Range: Signed}, 1},
		{"float16", tF16, ImageOptions{}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WritePNG(&b, tc.t, tc.o); err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(&b)
			if err != nil {
				t.Fatal(err)
			}
			if img.Bounds() != image.Rect(0, 0, w, h) {
				t.Fatalf("bounds %v", img.Bounds())
			}
			for y := range h {
				for x := range w {
					got, exp := rgbAt(img, x, y), want(x, y)
					for c := range 3 {
						if d := int(got[c]) - int(exp[c]); d > tc.tol || d < -tc.tol {
							t.Fatalf("pixel (%d,%d) = %v, want %v", x, y, got, exp)
						}
					}
				}
			}
		})
	}
}

func TestToImagesValues(t *testing.T) {
	// Clipping, NaN, gray, uint8.
	v := []float32{-0.5, 1.5, float32(math.NaN()), 0.5}
	g, _ := tensor.FromFloat32(v, 1, 2, 2)
	imgs, err := ToImages(g, ImageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []uint8{0, 255, 0, 128} {
		if got := rgbAt(imgs[0], i%2, i/2); got != [3]uint8{want, want, want} {
			t.Errorf("gray pixel %d = %v, want %d", i, got, want)
		}
	}
	u8, _ := tensor.FromUint8([]uint8{10, 20, 30, 40, 50, 60}, 1, 2, 3)
	imgs, err = ToImages(u8, ImageOptions{Layout: HWC, Range: Signed}) // range ignored for uint8
	if err != nil {
		t.Fatal(err)
	}
	if got := rgbAt(imgs[0], 1, 0); got != [3]uint8{40, 50, 60} {
		t.Errorf("uint8 pixel = %v", got)
	}
	for _, bad := range []struct {
		shape []int
		o     ImageOptions
	}{
		{[]int{2, 4, 4}, ImageOptions{}},            // 2 channels
		{[]int{4, 4, 3}, ImageOptions{Layout: CHW}}, // 4 channels in CHW
		{[]int{4, 4}, ImageOptions{}},               // rank 2
		{[]int{1, 1, 1, 1, 1}, ImageOptions{}},      // rank 5
		{[]int{3, 2, 2}, ImageOptions{Range: 7}},
		{[]int{3, 2, 2}, ImageOptions{Layout: 9}},
	} {
		n := 1
		for _, d := range bad.shape {
			n *= d
		}
		x, _ := tensor.FromFloat32(make([]float32, n), bad.shape...)
		if _, err := ToImages(x, bad.o); err == nil {
			t.Errorf("shape %v %+v accepted", bad.shape, bad.o)
		}
	}
	i32, _ := tensor.FromInt32(make([]int32, 12), 3, 2, 2)
	if _, err := ToImages(i32, ImageOptions{}); !errors.Is(err, ErrShape) {
		t.Errorf("int32: %v", err)
	}
	// Strided input (a transposed view) works.
	base, _ := tensor.FromFloat32(testFrame(4, 6), 3, 4, 6)
	view, _ := base.Permute(1, 2, 0) // [4, 6, 3] view of CHW data
	a, err := ToImages(view, ImageOptions{Layout: HWC})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ToImages(base, ImageOptions{})
	if !bytes.Equal(a[0].Pix, b[0].Pix) {
		t.Error("HWC view and CHW tensor give different images")
	}
}

// solidVideo is [T,3,H,W] with frame f a solid colour cols[f], except
// frame 0's top-left pixel, which is cols[len-1] (so a frame mixes
// colours).
func solidVideo(cols [][3]uint8, h, w int) *tensor.Tensor {
	T := len(cols)
	v := make([]float32, T*3*h*w)
	for f, c := range cols {
		for ch := range 3 {
			for i := range h * w {
				v[((f*3)+ch)*h*w+i] = float32(c[ch]) / 255
			}
		}
	}
	for ch := range 3 {
		v[ch*h*w] = float32(cols[T-1][ch]) / 255
	}
	t, _ := tensor.FromFloat32(v, T, 3, h, w)
	return t
}

func TestWriteGIF(t *testing.T) {
	cols := [][3]uint8{{255, 0, 0}, {0, 255, 0}, {12, 34, 56}, {200, 200, 10}}
	video := solidVideo(cols, 16, 24)
	var b bytes.Buffer
	if err := WriteGIF(&b, video, GIFOptions{Delay: 5, LoopCount: 0}); err != nil {
		t.Fatal(err)
	}
	g, err := gif.DecodeAll(&b)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Image) != 4 || g.Config.Width != 24 || g.Config.Height != 16 || g.LoopCount != 0 {
		t.Fatalf("%d frames, %d×%d, loop %d", len(g.Image), g.Config.Width, g.Config.Height, g.LoopCount)
	}
	for f, img := range g.Image {
		if g.Delay[f] != 5 || img.Bounds() != image.Rect(0, 0, 24, 16) {
			t.Errorf("frame %d: delay %d, bounds %v", f, g.Delay[f], img.Bounds())
		}
		// A median-cut palette of a 4-colour video holds the 4 colours
		// exactly, so even dithered frames are exact.
		if got := rgbAt(img, 5, 7); got != cols[f] {
			t.Errorf("frame %d pixel = %v, want %v", f, got, cols[f])
		}
	}
	if got := rgbAt(g.Image[0], 0, 0); got != cols[3] {
		t.Errorf("frame 0 corner = %v, want %v", got, cols[3])
	}
}

func TestWriteGIFDitheredGradient(t *testing.T) {
	// A smooth [-1,1] gradient video through Plan 9 with dithering: single
	// pixels are off, but 8×8 block means stay close to the source.
	const T, h, w = 2, 32, 48
	v := make([]float32, 0, T*3*h*w)
	for range T {
		for _, x := range testFrame(h, w) {
			v = append(v, 2*x-1)
		}
	}
	video, _ := tensor.FromFloat32(v, T, 3, h, w)
	for _, o := range []GIFOptions{
		{ImageOptions: ImageOptions{Range: Signed}, Palette: Plan9},
		{ImageOptions: ImageOptions{Range: Signed}, Palette: MedianCut},
		{ImageOptions: ImageOptions{Range: Signed}, Palette: MedianCut, NoDither: true},
	} {
		var b bytes.Buffer
		if err := WriteGIF(&b, video, o); err != nil {
			t.Fatal(err)
		}
		g, err := gif.DecodeAll(&b)
		if err != nil {
			t.Fatal(err)
		}
		if len(g.Image) != T || g.Delay[0] != 10 {
			t.Fatalf("%d frames, delay %d", len(g.Image), g.Delay[0])
		}
		src := testFrame(h, w)
		for by := 0; by < h; by += 8 {
			for bx := 0; bx < w; bx += 8 {
				var sum, want [3]float64
				for y := by; y < by+8; y++ {
					for x := bx; x < bx+8; x++ {
						p := rgbAt(g.Image[1], x, y)
						for c := range 3 {
							sum[c] += float64(p[c]) / 255
							want[c] += float64(src[c*h*w+y*w+x])
						}
					}
				}
				for c := range 3 {
					if d := math.Abs(sum[c]-want[c]) / 64; d > 0.04 {
						t.Errorf("%+v: block (%d,%d) channel %d mean off by %.3f", o, bx, by, c, d)
					}
				}
			}
		}
	}
	if err := WriteGIF(&bytes.Buffer{}, video, GIFOptions{Palette: 5}); err == nil {
		t.Error("unknown palette accepted")
	}
	if err := WriteGIF(&bytes.Buffer{}, video, GIFOptions{Delay: -1}); err == nil {
		t.Error("negative delay accepted")
	}
}

func TestWritePNGFrames(t *testing.T) {
	cols := [][3]uint8{{255, 0, 0}, {0, 0, 255}, {9, 99, 199}}
	dir := t.TempDir()
	paths, err := WritePNGFrames(dir, "frame", solidVideo(cols, 6, 10), ImageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 3 || filepath.Base(paths[2]) != "frame_0002.png" {
		t.Fatalf("paths %v", paths)
	}
	for f, p := range paths {
		fh, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(fh)
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
		if img.Bounds().Dx() != 10 || img.Bounds().Dy() != 6 || rgbAt(img, 3, 3) != cols[f] {
			t.Errorf("frame %d: %v, pixel %v", f, img.Bounds(), rgbAt(img, 3, 3))
		}
	}
	one, _ := tensor.FromFloat32(make([]float32, 12), 3, 2, 2)
	if _, err := WritePNGFrames(dir, "x", one, ImageOptions{}); !errors.Is(err, ErrShape) {
		t.Errorf("rank 3: %v", err)
	}
	if err := WritePNG(&bytes.Buffer{}, solidVideo(cols, 2, 2), ImageOptions{}); !errors.Is(err, ErrShape) {
		t.Errorf("WritePNG of a video: %v", err)
	}
}

func TestMedianCutPalette(t *testing.T) {
	// 200 distinct colours: all kept exactly.
	img := image.NewNRGBA(image.Rect(0, 0, 20, 10))
	want := map[[3]uint8]bool{}
	for i := range 200 {
		c := [3]uint8{uint8(i * 37), uint8(i * 11), uint8(i / 3)}
		want[c] = true
		copy(img.Pix[4*i:], []uint8{c[0], c[1], c[2], 255})
	}
	pal := MedianCutPalette([]*image.NRGBA{img, img}, 256)
	got := map[[3]uint8]bool{}
	for _, c := range pal {
		r, g, b, _ := c.RGBA()
		got[[3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8)}] = true
	}
	if len(pal) != len(want) || len(got) != len(want) {
		t.Fatalf("palette has %d colours (%d distinct), want %d", len(pal), len(got), len(want))
	}
	for c := range want {
		if !got[c] {
			t.Errorf("colour %v missing", c)
		}
	}
	// Many colours: exactly n entries; one colour: one entry.
	big := image.NewNRGBA(image.Rect(0, 0, 256, 256))
	for i := 0; i < len(big.Pix); i += 4 {
		copy(big.Pix[i:], []uint8{uint8(i), uint8(i >> 8), uint8(i >> 13), 255})
	}
	if p := MedianCutPalette([]*image.NRGBA{big}, 256); len(p) != 256 {
		t.Errorf("%d entries, want 256", len(p))
	}
	if p := MedianCutPalette([]*image.NRGBA{big}, 16); len(p) != 16 {
		t.Errorf("%d entries, want 16", len(p))
	}
	if p := MedianCutPalette([]*image.NRGBA{image.NewNRGBA(image.Rect(0, 0, 3, 3))}, 256); len(p) != 1 {
		t.Errorf("solid image: %d entries", len(p))
	}
}
