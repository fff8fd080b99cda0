package safetensors_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/omniflow-go/omniflow/tensor"
	"github.com/omniflow-go/omniflow/tensor/safetensors"
)

// rawFile lays out a file by hand: the 8-byte little-endian size of hdr,
// hdr, then data.
func rawFile(hdr string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	b = append(b, hdr...)
	return append(b, data...)
}

// info is one tensor's header entry as the spec writes it.
func info(name, dtype, shape string, begin, end int) string {
	return fmt.Sprintf(`%q:{"dtype":%q,"shape":%s,"data_offsets":[%d,%d]}`, name, dtype, shape, begin, end)
}

// hdr joins entries into a header object.
func hdr(entries ...string) string { return "{" + strings.Join(entries, ",") + "}" }

// seq returns n bytes 1, 2, 3, ... (wrapping), so misplaced bytes show.
func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i + 1)
	}
	return b
}

// filled returns a tensor of dt and shape whose bytes are seq plus salt.
func filled(t testing.TB, dt tensor.DType, salt byte, shape ...int) *tensor.Tensor {
	t.Helper()
	x, err := tensor.New(dt, shape)
	if err != nil {
		t.Fatal(err)
	}
	if x.SizeBytes() == 0 {
		return x // Bytes panics for shapes like [2 0 3] (tensor.IsContiguous)
	}
	for i := range x.Bytes() {
		x.Bytes()[i] = byte(i*7) + salt
	}
	return x
}

var allDTypes = []tensor.DType{tensor.Float32, tensor.Float16, tensor.BFloat16, tensor.Int32, tensor.Int64, tensor.Uint8}

// mustWrite serializes tensors to memory.
func mustWrite(t testing.TB, tensors map[string]*tensor.Tensor, meta map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := safetensors.Write(&buf, tensors, meta); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sameTensor fails unless got has want's dtype, shape and bytes.
func sameTensor(t testing.TB, name string, got, want *tensor.Tensor) {
	t.Helper()
	if got.DType() != want.DType() || !tensor.SameShape(got.Shape(), want.Shape()) {
		t.Fatalf("%s: got %v, want %v", name, got, want)
	}
	if want.SizeBytes() == 0 {
		return
	}
	wc, err := want.Contiguous()
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Release()
	if !bytes.Equal(got.Bytes(), wc.Bytes()) {
		t.Fatalf("%s: bytes % x, want % x", name, got.Bytes(), wc.Bytes())
	}
}
