package safetensors_test

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/omniflow-go/omniflow/tensor"
	"github.com/omniflow-go/omniflow/tensor/safetensors"
)

// openers read a serialized file back: from memory, and memory-mapped from
// a file the test writes.
var openers = []struct {
	name string
	open func(t *testing.T, b []byte) *safetensors.File
}{
	{"parse", func(t *testing.T, b []byte) *safetensors.File {
		f, err := safetensors.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}},
	{"open", func(t *testing.T, b []byte) *safetensors.File {
		path := filepath.Join(t.TempDir(), "m.safetensors")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := safetensors.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := f.Close(); err != nil {
				t.Error(err)
			}
		})
		return f
	}},
}

func TestRoundTrip(t *testing.T) {
	shapes := map[string][]int{"matrix": {3, 5}, "scalar": {}, "empty": {0}, "empty3d": {2, 0, 3}, "vector": {7}}
	for _, dt := range allDTypes {
		for _, op := range openers {
			t.Run(dt.String()+"/"+op.name, func(t *testing.T) {
				in := map[string]*tensor.Tensor{}
				for name, shape := range shapes {
					in[name] = filled(t, dt, byte(len(name)), shape...)
				}
				meta := map[string]string{"format": "pt", "note": "ünïcode \"quoted\"\n"}
				f := op.open(t, mustWrite(t, in, meta))

				names := slices.Sorted(maps.Keys(in))
				if got := f.Names(); !slices.Equal(got, names) {
					t.Fatalf("Names() = %v, want %v", got, names)
				}
				if got := f.Metadata(); len(got) != 2 || got["format"] != "pt" || got["note"] != meta["note"] {
					t.Fatalf("Metadata() = %q, want %q", got, meta)
				}
				for name, want := range in {
					gdt, shape, size, err := f.Info(name)
					if err != nil || gdt != dt || !tensor.SameShape(shape, want.Shape()) || size != want.SizeBytes() {
						t.Fatalf("Info(%q) = %v %v %d %v, want %v %v %d", name, gdt, shape, size, err, dt, want.Shape(), want.SizeBytes())
					}
					v, err := f.Tensor(name)
					if err != nil {
						t.Fatal(err)
					}
					sameTensor(t, name, v, want)
					c, err := f.TensorCopy(name)
					if err != nil {
						t.Fatal(err)
					}
					sameTensor(t, name, c, want)
				}
			})
		}
	}
}

func TestNoMetadataAndNoTensors(t *testing.T) {
	f, err := safetensors.Parse(mustWrite(t, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata() != nil || len(f.Names()) != 0 {
		t.Fatalf("Metadata() = %v, Names() = %v; want nil, none", f.Metadata(), f.Names())
	}
}

// TestWriteByteExact checks the writer against files laid out by hand from
// the spec: 8-byte little-endian header size, compact JSON header with
// "__metadata__" first and tensors in data order (decreasing alignment,
// then name), space padding to a multiple of 8, then the little-endian
// data.
func TestWriteByteExact(t *testing.T) {
	must := func(x *tensor.Tensor, err error) *tensor.Tensor {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	pad := func(h string) string {
		for len(h)%8 != 0 {
			h += " "
		}
		return h
	}
	f32s := func(fs ...uint32) []byte { // float32 bit patterns, little-endian
		var b []byte
		for _, f := range fs {
			b = append(b, byte(f), byte(f>>8), byte(f>>16), byte(f>>24))
		}
		return b
	}
	for _, tc := range []struct {
		name    string
		tensors map[string]*tensor.Tensor
		meta    map[string]string
		want    []byte
	}{
		{
			name: "mixed dtypes",
			tensors: map[string]*tensor.Tensor{
				"b": must(tensor.FromFloat32([]float32{1, -2}, 2)),
				"a": must(tensor.FromUint8([]uint8{1, 2, 3}, 3)),
				"c": must(tensor.FromInt64([]int64{7})), // rank 0
			},
			meta: map[string]string{"z": "tab\there", "format": "pt"},
			want: rawFile(pad(`{"__metadata__":{"format":"pt","z":"tab\there"},`+
				`"c":{"dtype":"I64","shape":[],"data_offsets":[0,8]},`+
				`"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},`+
				`"a":{"dtype":"U8","shape":[3],"data_offsets":[16,19]}}`),
				slices.Concat(
					[]byte{7, 0, 0, 0, 0, 0, 0, 0}, // int64 7
					f32s(0x3f800000, 0xc0000000),   // 1.0, -2.0
					[]byte{1, 2, 3},
				)),
		},
		{
			// The reference implementation's test_serialization: its
			// header is exactly 64 bytes, so no padding.
			name:    "reference attn.0",
			tensors: map[string]*tensor.Tensor{"attn.0": must(tensor.FromFloat32([]float32{0, 1, 2, 3, 4, 5}, 1, 2, 3))},
			want: rawFile(`{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}`,
				f32s(0, 0x3f800000, 0x40000000, 0x40400000, 0x40800000, 0x40a00000)),
		},
		{
			// test_serialization_forced_alignement: a 65-byte header padded
			// with 7 spaces.
			name:    "reference attn0",
			tensors: map[string]*tensor.Tensor{"attn0": must(tensor.FromFloat32([]float32{0, 1, 2, 3, 4, 5}, 1, 1, 2, 3))},
			want: rawFile(`{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       `,
				f32s(0, 0x3f800000, 0x40000000, 0x40400000, 0x40800000, 0x40a00000)),
		},
		{name: "empty", want: rawFile("{}      ", nil)},
		{name: "metadata only", meta: map[string]string{"framework": "pt"}, want: rawFile(`{"__metadata__":{"framework":"pt"}}     `, nil)},
		{
			name:    "escaped name",
			tensors: map[string]*tensor.Tensor{"q\"\\\x01é": must(tensor.FromUint8([]uint8{9}, 1))},
			want:    rawFile(pad(`{"q\"\\\u0001é":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`), []byte{9}),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mustWrite(t, tc.tensors, tc.meta)
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("wrote\n%q\nwant\n%q", got, tc.want)
			}
			if _, err := safetensors.Parse(got); err != nil {
				t.Fatal(err)
			}
			// Deterministic: the same input gives the same bytes.
			if again := mustWrite(t, tc.tensors, tc.meta); !bytes.Equal(again, got) {
				t.Fatal("second Write differs")
			}
		})
	}
}

func TestWriteAlignsEveryTensor(t *testing.T) {
	in := map[string]*tensor.Tensor{}
	for i, dt := range allDTypes {
		for _, n := range []int{1, 3, 5} { // odd sizes would misalign what follows in name order
			in[string(rune('a'+i))+string(rune('0'+n))] = filled(t, dt, 0, n)
		}
	}
	b := mustWrite(t, in, map[string]string{"k": "odd length"})
	f, err := safetensors.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range f.Names() {
		v, err := f.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		off := uintptr(unsafe.Pointer(unsafe.SliceData(v.Bytes()))) - uintptr(unsafe.Pointer(&b[0]))
		if off >= uintptr(len(b)) {
			t.Fatalf("%s: not a view of the buffer", name)
		}
		if off%uintptr(v.DType().Size()) != 0 {
			t.Fatalf("%s (%v) starts at file offset %d", name, v.DType(), off)
		}
	}
}

func TestWriteNonContiguous(t *testing.T) {
	x := filled(t, tensor.Int32, 0, 2, 3, 4)
	p, err := x.Permute(2, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.Slice(0, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if s.IsContiguous() {
		t.Fatal("test needs a strided view")
	}
	f, err := safetensors.Parse(mustWrite(t, map[string]*tensor.Tensor{"s": s}, nil))
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.Tensor("s")
	if err != nil {
		t.Fatal(err)
	}
	sameTensor(t, "s", got, s)
}

type fakeDeviceBuffer struct{ n int }

func (b fakeDeviceBuffer) Owner() any { return "fake:0" }
func (b fakeDeviceBuffer) Len() int   { return b.n }
func (b fakeDeviceBuffer) Release()   {}

func TestWriteErrors(t *testing.T) {
	ok := filled(t, tensor.Float32, 0, 2)
	dev, err := tensor.FromDevice(tensor.Float32, []int{2}, fakeDeviceBuffer{8})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		tensors map[string]*tensor.Tensor
		meta    map[string]string
		want    string
		is      error
	}{
		{"empty name", map[string]*tensor.Tensor{"": ok}, nil, "empty tensor name", nil},
		{"reserved name", map[string]*tensor.Tensor{"__metadata__": ok}, nil, `tensor name "__metadata__" is reserved`, nil},
		{"bad UTF-8 name", map[string]*tensor.Tensor{"a\xff": ok}, nil, "not valid UTF-8", nil},
		{"nil tensor", map[string]*tensor.Tensor{"w": nil}, nil, `tensor "w" is nil`, nil},
		{"device tensor", map[string]*tensor.Tensor{"w": ok, "gpu": dev}, nil, `tensor "gpu"`, tensor.ErrDevice},
		{"bad UTF-8 metadata", map[string]*tensor.Tensor{"w": ok}, map[string]string{"k": "\xff"}, `metadata "k"`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := safetensors.Write(&buf, tc.tensors, tc.meta)
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Fatalf("Write: %v, want an error containing %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("Write: %v is not %v", err, tc.is)
			}
			if buf.Len() != 0 {
				t.Fatalf("Write wrote %d bytes before failing", buf.Len())
			}
		})
	}
}

type failingWriter struct{ left int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		n := w.left
		w.left = 0
		return n, errors.New("disk full")
	}
	w.left -= len(p)
	return len(p), nil
}

func TestWriteReportsWriterErrors(t *testing.T) {
	in := map[string]*tensor.Tensor{"w": filled(t, tensor.Float32, 0, 64)}
	for _, left := range []int{0, 100} {
		err := safetensors.Write(&failingWriter{left: left}, in, nil)
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte("disk full")) {
			t.Fatalf("left=%d: Write: %v, want disk full", left, err)
		}
	}
}

func TestWriteFileIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	old := map[string]*tensor.Tensor{"old": filled(t, tensor.Uint8, 1, 4)}
	if err := safetensors.WriteFile(path, old, nil); err != nil {
		t.Fatal(err)
	}
	// A failing write leaves the old file and no temporary file.
	dev, err := tensor.FromDevice(tensor.Float32, []int{2}, fakeDeviceBuffer{8})
	if err != nil {
		t.Fatal(err)
	}
	if err := safetensors.WriteFile(path, map[string]*tensor.Tensor{"gpu": dev}, nil); err == nil {
		t.Fatal("WriteFile of a device tensor succeeded")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "m.safetensors" {
		t.Fatalf("directory holds %v, want only m.safetensors", entries)
	}
	// An open mapping of the old file survives a replacing WriteFile.
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := safetensors.WriteFile(path, map[string]*tensor.Tensor{"new": filled(t, tensor.Int64, 2, 3)}, nil); err != nil {
		t.Fatal(err)
	}
	v, err := f.Tensor("old")
	if err != nil {
		t.Fatal(err)
	}
	sameTensor(t, "old", v, old["old"])
	g, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if got := g.Names(); !slices.Equal(got, []string{"new"}) {
		t.Fatalf("new file has %v", got)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, want 0644", st.Mode())
	}
}

func TestTensorIsZeroCopy(t *testing.T) {
	b := mustWrite(t, map[string]*tensor.Tensor{"w": filled(t, tensor.Float32, 0, 4)}, nil)
	f, err := safetensors.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	v, err := f.Tensor("w")
	if err != nil {
		t.Fatal(err)
	}
	if &v.Bytes()[0] != &b[len(b)-16] {
		t.Fatal("Tensor copied an aligned tensor")
	}
	c, err := f.TensorCopy("w")
	if err != nil {
		t.Fatal(err)
	}
	if &c.Bytes()[0] == &b[len(b)-16] {
		t.Fatal("TensorCopy aliases the file")
	}
}

// alignedBuffer returns n bytes starting at an 8-byte-aligned address.
func alignedBuffer(n int) []byte {
	w := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(w))), len(w)*8)[:n]
}

// TestMisalignedTensorIsCopied builds files whose data region starts at
// every offset mod 8 and checks that Tensor returns a view exactly when
// the tensor's bytes are aligned to its element size, and a correct copy
// otherwise, both from memory and from a mapped file (page-aligned).
func TestMisalignedTensorIsCopied(t *testing.T) {
	for _, dt := range allDTypes {
		for r := 0; r < 8; r++ { // file offset of the data region, mod 8
			want := filled(t, dt, 3, 3)
			name := map[tensor.DType]string{tensor.Float32: "F32", tensor.Float16: "F16", tensor.BFloat16: "BF16",
				tensor.Int32: "I32", tensor.Int64: "I64", tensor.Uint8: "U8"}[dt]
			h := hdr(info("x", name, "[3]", 0, want.SizeBytes()))
			for (8+len(h))%8 != r {
				h += " "
			}
			raw := rawFile(h, want.Bytes())
			dataAt := 8 + len(h)
			for _, op := range openers {
				buf := alignedBuffer(len(raw))
				copy(buf, raw)
				var f *safetensors.File
				if op.name == "parse" {
					f = op.open(t, buf)
				} else {
					f = op.open(t, raw)
				}
				v, err := f.Tensor("x")
				if err != nil {
					t.Fatal(err)
				}
				sameTensor(t, "x", v, want)
				addr := uintptr(unsafe.Pointer(&v.Bytes()[0]))
				if addr%uintptr(dt.Size()) != 0 {
					t.Fatalf("%v at data offset %d (%s): misaligned tensor returned", dt, dataAt, op.name)
				}
				if op.name == "parse" {
					isView := &v.Bytes()[0] == &buf[dataAt]
					if wantView := dataAt%dt.Size() == 0; isView != wantView {
						t.Fatalf("%v at data offset %d: view=%v, want %v", dt, dataAt, isView, wantView)
					}
				}
			}
		}
	}
}

func TestTensorCopyUsesAllocator(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	want := filled(t, tensor.BFloat16, 0, 8)
	f, err := safetensors.Parse(mustWrite(t, map[string]*tensor.Tensor{"w": want}, nil))
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.TensorCopy("w", tensor.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	if mem.CurrentAlloc() == 0 {
		t.Fatal("TensorCopy did not allocate from the given allocator")
	}
	sameTensor(t, "w", c, want)
	c.Release()
}

func TestLookupErrors(t *testing.T) {
	b := rawFile(hdr(info("f64", "F64", "[2]", 0, 16), info("ok", "U8", "[1]", 16, 17)), seq(17))
	f, err := safetensors.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	// An unsupported dtype is described but cannot be read.
	dt, shape, size, err := f.Info("f64")
	if !errors.Is(err, safetensors.ErrUnsupportedDType) || dt != tensor.Invalid || !slices.Equal(shape, []int{2}) || size != 16 {
		t.Fatalf("Info(f64) = %v %v %d %v", dt, shape, size, err)
	}
	for _, get := range []func(string) (*tensor.Tensor, error){f.Tensor, func(n string) (*tensor.Tensor, error) { return f.TensorCopy(n) }} {
		if _, err := get("f64"); !errors.Is(err, safetensors.ErrUnsupportedDType) || err.Error() != `safetensors: unsupported dtype: tensor "f64" has dtype F64` {
			t.Fatalf("f64: %v", err)
		}
		if _, err := get("nope"); !errors.Is(err, safetensors.ErrNotFound) || err.Error() != `safetensors: no such tensor: "nope"` {
			t.Fatalf("nope: %v", err)
		}
	}
	if _, _, _, err := f.Info("nope"); !errors.Is(err, safetensors.ErrNotFound) {
		t.Fatalf("Info(nope): %v", err)
	}
	c, err := f.TensorCopy("ok")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := f.Tensor("ok"); !errors.Is(err, safetensors.ErrClosed) {
		t.Fatalf("Tensor after Close: %v", err)
	}
	if c.Uint8s()[0] != 17 {
		t.Fatalf("copy after Close holds %v", c.Uint8s())
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := safetensors.Open(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := safetensors.Open(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("Open(directory): %v", err)
	}
	for name, content := range map[string][]byte{"empty": nil, "short": {1, 2, 3}, "bad": rawFile("{]", nil)} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := safetensors.Open(path)
		if !errors.Is(err, safetensors.ErrInvalid) || !bytes.Contains([]byte(err.Error()), []byte(path)) {
			t.Fatalf("%s: %v, want ErrInvalid naming the path", name, err)
		}
	}
}
