package safetensors

import (
	"bytes"
	"slices"
	"testing"

	"github.com/omniflow-go/omniflow/tensor"
)

// TestBigEndianHost takes the big-endian path on this (little-endian)
// host by pretending its memory is big-endian: the file must then hold
// every element byte-reversed, and reading must reverse it back.
func TestBigEndianHost(t *testing.T) {
	if !hostLittleEndian {
		t.Skip("host is big-endian: the ordinary tests take this path")
	}
	in := map[string]*tensor.Tensor{}
	for i, dt := range []tensor.DType{tensor.Float32, tensor.Float16, tensor.BFloat16, tensor.Int32, tensor.Int64, tensor.Uint8} {
		x := tensor.Zeros(dt, 3)
		for j := range x.Bytes() {
			x.Bytes()[j] = byte(16*i + j)
		}
		in[dt.String()] = x
	}
	var native, swapped bytes.Buffer
	if err := Write(&native, in, nil); err != nil {
		t.Fatal(err)
	}
	hostLittleEndian = false
	defer func() { hostLittleEndian = true }()
	if err := Write(&swapped, in, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Parse(swapped.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	g, err := Parse(native.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for name, x := range in {
		e := f.entries[name]
		want := slices.Clone(g.data[e.begin:e.end])
		swapBytes(want, x.DType().Size())
		if got := f.data[e.begin:e.end]; !bytes.Equal(got, want) {
			t.Fatalf("%s: file holds % x, want % x", name, got, want)
		}
		for _, get := range []func(string, ...tensor.Option) (*tensor.Tensor, error){
			func(n string, _ ...tensor.Option) (*tensor.Tensor, error) { return f.Tensor(n) }, f.TensorCopy,
		} {
			y, err := get(name)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(y.Bytes(), x.Bytes()) {
				t.Fatalf("%s: read % x, want % x", name, y.Bytes(), x.Bytes())
			}
		}
	}
}

func TestSwapBytes(t *testing.T) {
	b := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	for _, tc := range []struct {
		size int
		want []byte
	}{
		{1, []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{2, []byte{2, 1, 4, 3, 6, 5, 8, 7}},
		{4, []byte{4, 3, 2, 1, 8, 7, 6, 5}},
		{8, []byte{8, 7, 6, 5, 4, 3, 2, 1}},
	} {
		got := slices.Clone(b)
		swapBytes(got, tc.size)
		if !bytes.Equal(got, tc.want) {
			t.Fatalf("size %d: % x, want % x", tc.size, got, tc.want)
		}
	}
}
