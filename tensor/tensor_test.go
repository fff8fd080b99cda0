package tensor_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/omniflow-go/omniflow/tensor"
)

func iota32(n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(i)
	}
	return s
}

func TestViewsShareStorageAndIndexCorrectly(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	x, err := tensor.New(tensor.Float32, []int{2, 3, 4}, tensor.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	copy(x.Float32s(), iota32(24))
	// x[i,j,k] = 12i + 4j + k
	p, err := x.Permute(2, 0, 1) // [4,2,3], p[k,i,j] = x[i,j,k]
	if err != nil {
		t.Fatal(err)
	}
	if p.IsContiguous() || p.At(3, 1, 2) != 12+8+3 {
		t.Fatalf("permute: contiguous=%v at=%v", p.IsContiguous(), p.At(3, 1, 2))
	}
	s, err := p.Slice(0, 1, 3) // k in [1,3)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Contiguous()
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{}
	for k := 1; k < 3; k++ {
		for i := 0; i < 2; i++ {
			for j := 0; j < 3; j++ {
				want = append(want, float32(12*i+4*j+k))
			}
		}
	}
	got := c.Float32s()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("contiguous copy %v, want %v", got, want)
		}
	}
	r, err := c.Reshape(-1, 3)
	if err != nil || r.Dim(0) != 4 || r.At(3, 2) != float64(want[11]) {
		t.Fatalf("reshape: %v %v", r, err)
	}
	tr, _ := x.Transpose(0, 2)
	idx, _ := tr.Index(0, 2) // x[:, :, 2] transposed: [3,2]
	if idx.At(1, 1) != 12+4+2 {
		t.Fatalf("index: %v", idx.At(1, 1))
	}
	rs, err := tr.Reshape(24) // not contiguous: copies
	if err != nil || rs.At(1) != 12 {
		t.Fatalf("reshape of a transposed view: %v %v", rs, err)
	}
	u, _ := x.Unsqueeze(1)
	e, err := u.Expand(2, 5, 3, 4)
	if err != nil || e.At(1, 4, 2, 3) != 12+8+3 || e.Strides()[1] != 0 {
		t.Fatalf("expand: %v %v", e, err)
	}
	for _, v := range []*tensor.Tensor{p, s, c, r, tr, idx, rs, u, e} {
		v.Release()
	}
	if mem.CurrentAlloc() == 0 {
		t.Fatal("storage freed while x still holds it")
	}
	x.Release()
}

func TestShapeErrors(t *testing.T) {
	x := tensor.Zeros(tensor.Float32, 2, 3)
	cases := []struct {
		name string
		f    func() error
	}{
		{"negative dim", func() error { _, err := tensor.New(tensor.Float32, []int{2, -1}); return err }},
		{"bad reshape", func() error { _, err := x.Reshape(4, 2); return err }},
		{"two -1", func() error { _, err := x.Reshape(-1, -1); return err }},
		{"slice past end", func() error { _, err := x.Slice(1, 1, 4); return err }},
		{"axis out of range", func() error { _, err := x.Transpose(0, 2); return err }},
		{"not a permutation", func() error { _, err := x.Permute(0, 0); return err }},
		{"bad expand", func() error { _, err := x.Expand(3, 3); return err }},
		{"bytes too short", func() error { _, err := tensor.FromBytes(tensor.Float32, []int{2}, make([]byte, 7)); return err }},
		{"buffer too small", func() error {
			_, err := tensor.FromBuffer(tensor.Float32, []int{3}, []int{2}, 0, memory.NewBufferBytes(make([]byte, 16)))
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.f(); !errors.Is(err, tensor.ErrShape) {
				t.Fatalf("want ErrShape, got %v", err)
			}
		})
	}
}

func TestCopyFromIntoStridedView(t *testing.T) {
	x := tensor.Zeros(tensor.Float32, 3, 4)
	tr, _ := x.Transpose(0, 1) // [4,3] view
	src, _ := tensor.FromFloat32(iota32(12), 4, 3)
	if err := tr.CopyFrom(src); err != nil {
		t.Fatal(err)
	}
	// x[j,i] = src[i,j] = 3i + j
	if x.At(2, 1) != 3*1+2 {
		t.Fatalf("x = %s", x.Format(4))
	}
}

// nearest returns the representable value (from the sorted finite table)
// nearest to f, ties to the even bit pattern: the definition of
// round-to-nearest-even, computed in float64.
func nearest(f float64, vals []float64, bits []uint16) uint16 {
	i := sort.SearchFloat64s(vals, f)
	best := -1
	for _, j := range []int{i - 1, i} {
		if j < 0 || j >= len(vals) {
			continue
		}
		if best < 0 {
			best = j
			continue
		}
		db, dj := math.Abs(vals[best]-f), math.Abs(vals[j]-f)
		if dj < db || (dj == db && bits[j]&1 == 0) {
			best = j
		}
	}
	return bits[best]
}

func finiteTable(widen func(uint16) float32) ([]float64, []uint16) {
	type pair struct {
		v float64
		b uint16
	}
	var ps []pair
	for h := 0; h < 1<<16; h++ {
		f := widen(uint16(h))
		if math.IsInf(float64(f), 0) || math.IsNaN(float64(f)) || (f == 0 && math.Signbit(float64(f))) {
			continue
		}
		ps = append(ps, pair{float64(f), uint16(h)})
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].v < ps[j].v })
	vals := make([]float64, len(ps))
	bits := make([]uint16, len(ps))
	for i, p := range ps {
		vals[i], bits[i] = p.v, p.b
	}
	return vals, bits
}

func TestHalfConversions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		widen  func(uint16) float32
		narrow func(float32) uint16
		max    float64 // largest finite value
	}{
		{"float16", tensor.F16ToF32, tensor.F32ToF16, 65504},
		{"bfloat16", tensor.BF16ToF32, tensor.F32ToBF16, 3.3895313892515355e38},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Every half value round-trips exactly through float32.
			for h := 0; h < 1<<16; h++ {
				f := tc.widen(uint16(h))
				back := tc.narrow(f)
				if math.IsNaN(float64(f)) {
					if !math.IsNaN(float64(tc.widen(back))) {
						t.Fatalf("NaN %#04x came back as %#04x", h, back)
					}
					continue
				}
				if back != uint16(h) {
					t.Fatalf("%#04x -> %g -> %#04x", h, f, back)
				}
			}
			if got := tc.widen(tc.narrow(float32(tc.max))); float64(got) != tc.max {
				t.Fatalf("max %g -> %g", tc.max, got)
			}
			// Random float32 values round to nearest, ties to even, exactly
			// as the float64 search over all representable values says.
			vals, bits := finiteTable(tc.widen)
			rng := rand.New(rand.NewPCG(1, 2))
			for i := 0; i < 20000; i++ {
				var f float32
				switch i % 3 {
				case 0:
					f = float32(rng.NormFloat64() * 100)
				case 1:
					f = float32(rng.NormFloat64() * 1e-6) // subnormal range of float16
				default: // exact midpoints between neighbours
					j := rng.IntN(len(vals) - 1)
					f = float32((vals[j] + vals[j+1]) / 2)
				}
				if math.Abs(float64(f)) > tc.max {
					continue
				}
				want := nearest(float64(f), vals, bits)
				if got := tc.narrow(f); got != want && !(tc.widen(got) == 0 && tc.widen(want) == 0) {
					t.Fatalf("%g (%#08x): got %#04x (%g), want %#04x (%g)", f, math.Float32bits(f), got, tc.widen(got), want, tc.widen(want))
				}
			}
			if !math.IsInf(float64(tc.widen(tc.narrow(float32(tc.max*2)))), 1) {
				t.Fatal("overflow is not infinity")
			}
		})
	}
}

func TestConvertTo(t *testing.T) {
	x, _ := tensor.FromFloat32([]float32{1, -2.5, 3.140625, 65536}, 2, 2)
	for _, dt := range []tensor.DType{tensor.Float16, tensor.BFloat16, tensor.Int32, tensor.Int64} {
		y, err := x.ConvertTo(dt)
		if err != nil {
			t.Fatal(err)
		}
		z, err := y.ConvertTo(tensor.Float32)
		if err != nil {
			t.Fatal(err)
		}
		got := z.Float32s()
		want := map[tensor.DType][]float32{
			tensor.Float16:  {1, -2.5, 3.140625, float32(math.Inf(1))},
			tensor.BFloat16: {1, -2.5, 3.140625, 65536},
			tensor.Int32:    {1, -2, 3, 65536},
			tensor.Int64:    {1, -2, 3, 65536},
		}[dt]
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%v: %v, want %v", dt, got, want)
				break
			}
		}
	}
}

func TestNegativeStridesAndEmptyTensors(t *testing.T) {
	// A reversed view over a buffer: elements 5,4,3,2,1,0.
	buf := memory.NewBufferBytes(make([]byte, 6*4))
	x, err := tensor.FromBuffer(tensor.Float32, []int{6}, []int{1}, 0, buf)
	if err != nil {
		t.Fatal(err)
	}
	copy(x.Float32s(), iota32(6))
	r, err := tensor.FromBuffer(tensor.Float32, []int{2, 3}, []int{-3, -1}, 5, buf)
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.Contiguous()
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range c.Float32s() {
		if v != float32(5-i) {
			t.Fatalf("reversed copy %v", c.Float32s())
		}
	}
	e, err := tensor.New(tensor.Float32, []int{2, 0, 3})
	if err != nil || !e.IsContiguous() || len(e.Bytes()) != 0 {
		t.Fatalf("empty tensor: %v contiguous=%v", err, e.IsContiguous())
	}
}
