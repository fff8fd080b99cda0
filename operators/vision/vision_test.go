package vision

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"runtime"
	"testing"

	"github.com/omniflow-go/omniflow/tensor"
)

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestLoadAndToTensor(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 3, 2))
	img.Set(0, 0, color.NRGBA{255, 0, 0, 255})
	img.Set(1, 0, color.NRGBA{0, 255, 0, 255})
	img.Set(2, 0, color.NRGBA{0, 0, 255, 255})
	img.Set(0, 1, color.NRGBA{51, 102, 153, 255})
	img.Set(1, 1, color.NRGBA{0, 0, 0, 0})   // transparent: white
	img.Set(2, 1, color.NRGBA{0, 0, 0, 128}) // half black over white
	loaded, err := Load(bytes.NewReader(encodePNG(t, img)))
	if err != nil {
		t.Fatal(err)
	}
	tt, err := ToTensor(loaded)
	if err != nil {
		t.Fatal(err)
	}
	if s := tt.Shape(); s[0] != 3 || s[1] != 2 || s[2] != 3 {
		t.Fatalf("shape %v, want [3 2 3]", s)
	}
	half := 1 - float32(128)/255
	want := [][]float32{ // per channel, row-major
		{1, 0, 0, 0.2, 1, half},
		{0, 1, 0, 0.4, 1, half},
		{0, 0, 1, 0.6, 1, half},
	}
	v := tt.Float32s()
	for c := range 3 {
		for i, w := range want[c] {
			if got := v[c*6+i]; math.Abs(float64(got-w)) > 1e-6 {
				t.Errorf("channel %d pixel %d = %v, want %v", c, i, got, w)
			}
		}
	}
	// The generic path (premultiplied RGBA, here a paletted image) agrees.
	pal := image.NewPaletted(image.Rect(0, 0, 2, 1), color.Palette{color.NRGBA{51, 102, 153, 255}, color.NRGBA{0, 0, 0, 128}})
	pal.SetColorIndex(1, 0, 1)
	pt, _ := ToTensor(pal)
	pv := pt.Float32s()
	for c, w := range [][2]float32{{0.2, half}, {0.4, half}, {0.6, half}} {
		for i := range 2 {
			if math.Abs(float64(pv[c*2+i]-w[i])) > 2e-3 {
				t.Errorf("paletted channel %d pixel %d = %v, want %v", c, i, pv[c*2+i], w[i])
			}
		}
	}
	// Gray.
	g := image.NewGray(image.Rect(0, 0, 1, 1))
	g.Pix[0] = 255
	gt, _ := ToTensor(g)
	if gv := gt.Float32s(); gv[0] != 1 || gv[1] != 1 || gv[2] != 1 {
		t.Errorf("gray = %v", gv)
	}
}

func TestLoadJPEG(t *testing.T) {
	src := image.NewNRGBA(image.Rect(0, 0, 32, 16))
	for i := 0; i < len(src.Pix); i += 4 {
		copy(src.Pix[i:], []uint8{200, 100, 50, 255})
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, src, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	img, err := Load(&b)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := img.(*image.YCbCr); !ok {
		t.Fatalf("JPEG decoded to %T", img)
	}
	tt, _ := ToTensor(img)
	v := tt.Float32s()
	for c, w := range []float32{200.0 / 255, 100.0 / 255, 50.0 / 255} {
		if got := v[c*32*16+8*32+16]; math.Abs(float64(got-w)) > 3.0/255 {
			t.Errorf("channel %d = %v, want ≈ %v", c, got, w)
		}
	}
}

// pngHeaderOnly is a PNG whose IHDR claims w × h and has no pixel data.
func pngHeaderOnly(w, h uint32) []byte {
	b := []byte("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 6 // 8-bit RGBA
	b = binary.BigEndian.AppendUint32(b, 13)
	chunk := append([]byte("IHDR"), ihdr...)
	b = append(b, chunk...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(chunk))
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(bytes.NewReader([]byte("not an image"))); err == nil {
		t.Error("garbage decoded")
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := Load(bytes.NewReader(pngHeaderOnly(100000, 100000)))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge header: %v, want ErrTooLarge", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("a header claiming 10^10 pixels allocated %d bytes", grew)
	}
	small := encodePNG(t, image.NewNRGBA(image.Rect(0, 0, 10, 10)))
	if _, err := Load(bytes.NewReader(small), WithMaxPixels(99)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("limit: %v", err)
	}
	if _, err := Load(bytes.NewReader(small[:len(small)-20])); err == nil {
		t.Error("truncated PNG decoded")
	}
	if _, err := LoadFile("/nonexistent/x.png"); err == nil {
		t.Error("missing file loaded")
	}
}

func TestNormalize(t *testing.T) {
	x, _ := tensor.FromFloat32([]float32{0.5, 0.5, 0.5, 0.5, 0.5, 0.5}, 3, 1, 2)
	if err := Normalize(x, CLIPMean, CLIPStd); err != nil {
		t.Fatal(err)
	}
	v := x.Float32s()
	for c := range 3 {
		want := (0.5 - CLIPMean[c]) / CLIPStd[c]
		if math.Abs(float64(v[2*c]-want)) > 1e-6 || v[2*c] != v[2*c+1] {
			t.Errorf("channel %d = %v, want %v", c, v[2*c:2*c+2], want)
		}
	}
	bad, _ := tensor.FromFloat32(make([]float32, 8), 2, 2, 2)
	if err := Normalize(bad, CLIPMean, CLIPStd); !errors.Is(err, ErrShape) {
		t.Errorf("[2,2,2]: %v", err)
	}
	if err := Normalize(x, CLIPMean, [3]float32{1, 0, 1}); err == nil {
		t.Error("zero std accepted")
	}
}

func plane(h, w int, f func(y, x int) float32) *tensor.Tensor {
	v := make([]float32, h*w)
	for y := range h {
		for x := range w {
			v[y*w+x] = f(y, x)
		}
	}
	t, _ := tensor.FromFloat32(v, 1, h, w)
	return t
}

func TestResizeConstant(t *testing.T) {
	in := plane(37, 53, func(int, int) float32 { return 0.3 })
	for _, f := range []Filter{Bilinear, Bicubic} {
		for _, sz := range [][2]int{{74, 106}, {20, 30}, {37, 53}, {5, 200}, {1, 1}, {111, 17}} {
			out, err := Resize(in, sz[0], sz[1], f)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range out.Float32s() {
				if math.Abs(float64(v)-0.3) > 1e-6 {
					t.Fatalf("%v %v: pixel %d = %v, want 0.3", f, sz, i, v)
				}
			}
		}
	}
}

func TestResizeGradient(t *testing.T) {
	// A horizontal ramp, value = x at pixel centre x + 0.5. Both kernels
	// reproduce linear functions, so away from the borders output pixel i
	// (centre (i + 0.5)·scale in input coordinates) is (i + 0.5)·scale − 0.5
	// — for upscaling, and for integer downscaling where the stretched
	// kernel samples symmetric points.
	const inW = 40
	in := plane(4, inW, func(_, x int) float32 { return float32(x) })
	for _, f := range []Filter{Bilinear, Bicubic} {
		for _, outW := range []int{80, 60, 20, 10} {
			out, err := Resize(in, 4, outW, f)
			if err != nil {
				t.Fatal(err)
			}
			scale := float64(inW) / float64(outW)
			margin := int(math.Ceil(2 * f.support() * math.Max(scale, 1) / scale))
			v := out.Float32s()
			for y := range 4 {
				for i := margin; i < outW-margin; i++ {
					want := (float64(i)+0.5)*scale - 0.5
					if got := float64(v[y*outW+i]); math.Abs(got-want) > 1e-4 {
						t.Fatalf("%v width %d: pixel %d = %v, want %v", f, outW, i, got, want)
					}
				}
			}
		}
	}
	// A hand-worked PIL bilinear case: [0, 1] to 4 pixels is
	// [0, 0.25, 0.75, 1] (PIL gives 0, 64, 191, 255 for 0..255).
	out, _ := Resize(plane(1, 2, func(_, x int) float32 { return float32(x) }), 1, 4, Bilinear)
	for i, w := range []float32{0, 0.25, 0.75, 1} {
		if got := out.Float32s()[i]; math.Abs(float64(got-w)) > 1e-7 {
			t.Errorf("bilinear [0 1] -> 4: pixel %d = %v, want %v", i, got, w)
		}
	}
	// And vertical: the same ramp transposed.
	vin := plane(inW, 3, func(y, _ int) float32 { return float32(y) })
	vout, _ := Resize(vin, 80, 3, Bicubic)
	for j := 8; j < 72; j++ {
		if got, want := float64(vout.Float32s()[j*3+1]), (float64(j)+0.5)/2-0.5; math.Abs(got-want) > 1e-4 {
			t.Fatalf("vertical row %d = %v, want %v", j, got, want)
		}
	}
}

func TestResizeFrames(t *testing.T) {
	v := make([]float32, 2*3*4*4)
	for i := range v {
		v[i] = float32(i / 16) // each plane constant: its index
	}
	in, _ := tensor.FromFloat32(v, 2, 3, 4, 4)
	out, err := Resize(in, 8, 6, Bicubic)
	if err != nil {
		t.Fatal(err)
	}
	if s := out.Shape(); len(s) != 4 || s[0] != 2 || s[1] != 3 || s[2] != 8 || s[3] != 6 {
		t.Fatalf("shape %v", s)
	}
	ov := out.Float32s()
	for p := range 6 {
		if math.Abs(float64(ov[p*48+20]-float32(p))) > 1e-5 {
			t.Errorf("plane %d = %v", p, ov[p*48+20])
		}
	}
	if _, err := Resize(in, 0, 5, Bilinear); !errors.Is(err, ErrShape) {
		t.Errorf("height 0: %v", err)
	}
	i32, _ := tensor.FromInt32([]int32{1, 2, 3, 4}, 1, 2, 2)
	if _, err := Resize(i32, 4, 4, Bilinear); !errors.Is(err, ErrShape) {
		t.Errorf("int32: %v", err)
	}
}

func TestSmartResize(t *testing.T) {
	def := DefaultSmartResize()
	tests := []struct {
		h, w   int
		cfg    SmartResizeConfig
		wh, ww int
	}{
		// 1080/28 = 38.6 -> 39 (1092); 1920/28 = 68.6 -> 69 (1932); area within bounds.
		{1080, 1920, def, 1092, 1932},
		// Python's round: 42/28 = 1.5 -> 2, 70/28 = 2.5 -> 2, 98/28 = 3.5 -> 4.
		{42, 98, def, 56, 112},
		{70, 98, def, 56, 112},
		// 28×28 = 784 < 3136: beta = sqrt(3136/784) = 2 -> ceil(2)·28 = 56.
		{28, 28, def, 56, 56},
		// 4000×3000 rounds to 4004×2996 > 78400: beta = sqrt(12e6/78400) ≈ 12.37,
		// floor(4000/12.37/28) = 11 -> 308, floor(3000/12.37/28) = 8 -> 224.
		{4000, 3000, SmartResizeConfig{Factor: 28, MinPixels: 3136, MaxPixels: 78400}, 308, 224},
		// A thin image still gets at least one factor per side.
		{10, 1000, def, 28, 1008},
	}
	for _, tc := range tests {
		h, w, err := SmartResize(tc.h, tc.w, tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if h != tc.wh || w != tc.ww {
			t.Errorf("SmartResize(%d, %d) = %d, %d; want %d, %d", tc.h, tc.w, h, w, tc.wh, tc.ww)
		}
	}
	for _, bad := range [][2]int{{10, 2100}, {0, 50}, {50, -1}} {
		if _, _, err := SmartResize(bad[0], bad[1], def); err == nil {
			t.Errorf("SmartResize%v succeeded", bad)
		}
	}
	if _, _, err := SmartResize(100, 100, SmartResizeConfig{Factor: 28, MinPixels: 10, MaxPixels: 5}); err == nil {
		t.Error("bad config accepted")
	}
	// Properties over many sizes: multiples of the factor, area bounds,
	// aspect kept to within the rounding.
	cfg := SmartResizeConfig{Factor: 28, MinPixels: 56 * 56, MaxPixels: 28 * 28 * 256}
	for h := 20; h < 3000; h += 37 {
		for w := 20; w < 3000; w += 53 {
			rh, rw, err := SmartResize(h, w, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if rh%28 != 0 || rw%28 != 0 || rh*rw > cfg.MaxPixels {
				t.Fatalf("%d×%d -> %d×%d", h, w, rh, rw)
			}
			if rh*rw < cfg.MinPixels && rh > 28 && rw > 28 {
				t.Fatalf("%d×%d -> %d×%d below MinPixels", h, w, rh, rw)
			}
			// Each side moves by less than one factor from its scaled size.
			if r0, r1 := float64(h)/float64(w), float64(rh)/float64(rw); min(rh, rw) > 28 && math.Abs(math.Log(r1/r0)) > 28.0/float64(rh)+28.0/float64(rw) {
				t.Fatalf("%d×%d -> %d×%d changes the aspect too much", h, w, rh, rw)
			}
		}
	}
}
