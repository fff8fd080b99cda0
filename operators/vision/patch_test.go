package vision

import (
	"errors"
	"image"
	"image/color"
	"math"
	"testing"

	"github.com/omniflow-go/omniflow/tensor"
)

// positional returns frames [T, C, H, W] whose every value encodes its
// position: ((t·C + c)·H + y)·W + x (exact in float32 for these sizes).
func positional(T, C, H, W int) *tensor.Tensor {
	v := make([]float32, T*C*H*W)
	for i := range v {
		v[i] = float32(i)
	}
	t, _ := tensor.FromFloat32(v, T, C, H, W)
	return t
}

func decode(v float32, C, H, W int) (t, c, y, x int) {
	i := int(v)
	x, i = i%W, i/W
	y, i = i%H, i/H
	c, t = i%C, i/C
	return
}

// transposeIndex is Qwen2VLImageProcessor's reshape and transpose done
// by index arithmetic, independently of Patchify: the flat output element
// (row, col) of patches.reshape(gt, Tp, C, gh/M, M, P, gw/M, M, P)
// .transpose(0, 3, 6, 4, 7, 2, 1, 5, 8).reshape(rows, cols) comes from
// source dims (t, tt, c, bh, mh, py, bw, mw, px).
func transposeIndex(row, col, C, gh, gw, P, M, Tp int) (frame, c, y, x int) {
	// Output dims in transposed order: gt, gh/M, gw/M, M, M, C, Tp, P, P.
	dims := []int{0, gh / M, gw / M, M, M, C, Tp, P, P}
	flat := row*(C*Tp*P*P) + col
	idx := make([]int, len(dims))
	for d := len(dims) - 1; d >= 1; d-- {
		idx[d] = flat % dims[d]
		flat /= dims[d]
	}
	idx[0] = flat
	t, bh, bw, mh, mw, cc, tt, py, px := idx[0], idx[1], idx[2], idx[3], idx[4], idx[5], idx[6], idx[7], idx[8]
	return t*Tp + tt, cc, (bh*M+mh)*P + py, (bw*M+mw)*P + px
}

func TestPatchifyLayout(t *testing.T) {
	cfg := DefaultPatchConfig()
	for _, T := range []int{1, 2, 3, 4} {
		const C, H, W = 3, 56, 84
		frames := positional(T, C, H, W)
		p, err := Patchify(frames, cfg)
		if err != nil {
			t.Fatal(err)
		}
		gt := (T + 1) / 2
		if p.GridT != gt || p.GridH != 4 || p.GridW != 6 || p.NumTokens() != gt*4*6/4 {
			t.Fatalf("T=%d: grid %d×%d×%d, %d tokens", T, p.GridT, p.GridH, p.GridW, p.NumTokens())
		}
		rows, cols := gt*4*6, C*2*14*14
		if s := p.Data.Shape(); s[0] != rows || s[1] != cols {
			t.Fatalf("T=%d: shape %v, want [%d %d]", T, s, rows, cols)
		}
		v := p.Data.Float32s()
		for r := range rows {
			for col := range cols {
				f, c, y, x := transposeIndex(r, col, C, 4, 6, 14, 2, 2)
				f = min(f, T-1) // the padding frame repeats the last one
				gf, gc, gy, gx := decode(v[r*cols+col], C, H, W)
				if gf != f || gc != c || gy != y || gx != x {
					t.Fatalf("T=%d row %d col %d holds (t%d c%d y%d x%d), want (t%d c%d y%d x%d)", T, r, col, gf, gc, gy, gx, f, c, y, x)
				}
			}
		}
	}
}

// Spot checks by hand for one still image 56×84: rows come in 2×2
// squares, row-major inside the square, squares in raster order.
func TestPatchifySpots(t *testing.T) {
	const H, W = 56, 84
	p, err := Patchify(positional(1, 3, H, W), DefaultPatchConfig())
	if err != nil {
		t.Fatal(err)
	}
	v := p.Data.Float32s()
	cols := 3 * 2 * 14 * 14
	at := func(row, col int) (int, int, int, int) { return decode(v[row*cols+col], 3, H, W) }
	check := func(row, col, c, y, x int) {
		t.Helper()
		if _, gc, gy, gx := at(row, col); gc != c || gy != y || gx != x {
			t.Errorf("row %d col %d = (c%d y%d x%d), want (c%d y%d x%d)", row, col, gc, gy, gx, c, y, x)
		}
	}
	check(0, 0, 0, 0, 0)
	check(0, 1, 0, 0, 1)   // px
	check(0, 14, 0, 1, 0)  // py
	check(0, 196, 0, 0, 0) // second temporal copy of the same pixel
	check(0, 392, 1, 0, 0) // channel after 2 frames × 14 × 14
	check(1, 0, 0, 0, 14)  // right neighbour in the 2×2 square
	check(2, 0, 0, 14, 0)  // below, in the same square
	check(3, 0, 0, 14, 14) // diagonal
	check(4, 0, 0, 0, 28)  // the next square to the right
	check(12, 0, 0, 28, 0) // first square of the second row of squares (84/28 = 3 per row)
	check(23, cols-1, 2, 55, 83)
}

func TestPatchifyErrors(t *testing.T) {
	for _, s := range [][]int{{3, 28, 30}, {3, 14, 28}, {2, 3, 28}, {28, 28}} {
		n := 1
		for _, d := range s {
			n *= d
		}
		x, _ := tensor.FromFloat32(make([]float32, n), s...)
		if _, err := Patchify(x, DefaultPatchConfig()); !errors.Is(err, ErrShape) {
			t.Errorf("shape %v: %v", s, err)
		}
	}
	x, _ := tensor.FromFloat32(make([]float32, 3*28*28), 3, 28, 28)
	if _, err := Patchify(x, PatchConfig{}); err == nil {
		t.Error("zero config accepted")
	}
}

func TestPreprocess(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 90, 60))
	for y := range 60 {
		for x := range 90 {
			img.Set(x, y, color.NRGBA{128, 64, 32, 255})
		}
	}
	p, err := Preprocess(DefaultProcessorConfig(), img)
	if err != nil {
		t.Fatal(err)
	}
	// 60×90 -> 56×84 (round(2.14)·28, round(3.21)·28): a 4×6 grid, 1 frame
	// pair, 24 patches of 3·2·14·14 = 1176 values, 6 merged tokens.
	if p.GridT != 1 || p.GridH != 4 || p.GridW != 6 || p.NumTokens() != 6 {
		t.Fatalf("grid %d×%d×%d", p.GridT, p.GridH, p.GridW)
	}
	if s := p.Data.Shape(); s[0] != 24 || s[1] != 1176 {
		t.Fatalf("shape %v", s)
	}
	v := p.Data.Float32s()
	for c, u := range []float32{128, 64, 32} {
		want := (u/255 - CLIPMean[c]) / CLIPStd[c]
		for _, col := range []int{c * 392, c*392 + 391} {
			for _, row := range []int{0, 23} {
				if got := v[row*1176+col]; math.Abs(float64(got-want)) > 1e-5 {
					t.Errorf("channel %d: %v, want %v", c, got, want)
				}
			}
		}
	}
	// Frames of a video.
	p, err = Preprocess(DefaultProcessorConfig(), img, img, img)
	if err != nil || p.GridT != 2 {
		t.Errorf("3 frames: grid t %d, %v", p.GridT, err)
	}
	if _, err := Preprocess(DefaultProcessorConfig(), img, image.NewNRGBA(image.Rect(0, 0, 5, 5))); !errors.Is(err, ErrShape) {
		t.Errorf("mixed sizes: %v", err)
	}
	if _, err := Preprocess(DefaultProcessorConfig()); err == nil {
		t.Error("no images accepted")
	}
	bad := DefaultProcessorConfig()
	bad.Resize.Factor = 32
	if _, err := Preprocess(bad, img); err == nil {
		t.Error("factor mismatch accepted")
	}
}

func BenchmarkPreprocess(b *testing.B) {
	img := image.NewNRGBA(image.Rect(0, 0, 1920, 1080))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	cfg := DefaultProcessorConfig()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Preprocess(cfg, img); err != nil {
			b.Fatal(err)
		}
	}
}
