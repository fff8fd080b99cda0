package tensor_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/omniflow-go/omniflow/tensor"
)

// ipcInputs returns named tensors of dtype dt covering the layouts WriteIPC
// must handle, and a func releasing them.
func ipcInputs(t testing.TB, mem memory.Allocator, dt tensor.DType) ([]tensor.NamedTensor, func()) {
	t.Helper()
	var owned []*tensor.Tensor
	keep := func(v *tensor.Tensor, err error) *tensor.Tensor {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		owned = append(owned, v)
		return v
	}
	x := keep(filled(t, mem, dt, 3, 4, 5), nil)
	one := keep(x.Slice(0, 1, 2))
	// Random bit patterns: NaN payloads, infinities, -0 and subnormals must
	// come back bit for bit.
	bits := keep(filled(t, mem, dt, 7, 9), nil)
	rng := rand.New(rand.NewPCG(uint64(dt), 7))
	for i := range bits.Bytes() {
		bits.Bytes()[i] = byte(rng.Uint32())
	}
	in := []tensor.NamedTensor{
		{Name: "contiguous", Tensor: x},
		{Name: "transposed", Tensor: keep(x.Permute(2, 0, 1))},
		{Name: "sliced", Tensor: keep(x.Slice(1, 1, 3))},
		{Name: "row at an offset", Tensor: keep(x.Index(0, 2))},
		{Name: "broadcast", Tensor: keep(one.Expand(2, 4, 5))},
		{Name: "scalar", Tensor: keep(filled(t, mem, dt), nil)},
		{Name: "scalar view", Tensor: keep(keep(keep(x.Index(0, 1)).Index(0, 2)).Index(0, 3))},
		{Name: "empty", Tensor: keep(filled(t, mem, dt, 0), nil)},
		{Name: "empty 3-D", Tensor: keep(filled(t, mem, dt, 2, 0, 3), nil)},
		{Name: "empty view", Tensor: keep(x.Slice(2, 5, 5))},
		{Name: "bits", Tensor: bits},
		{Name: "", Tensor: keep(filled(t, mem, dt, 1), nil)},
	}
	return in, func() {
		for _, v := range owned {
			v.Release()
		}
	}
}

func TestIPCRoundTrip(t *testing.T) {
	for _, dt := range allDTypes {
		t.Run(dt.String(), func(t *testing.T) {
			src := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer src.AssertSize(t, 0)
			dst := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer dst.AssertSize(t, 0)
			in, release := ipcInputs(t, src, dt)
			defer release()
			var stream bytes.Buffer
			if err := tensor.WriteIPC(&stream, in, tensor.WithIPCAllocator(src)); err != nil {
				t.Fatal(err)
			}
			out, err := tensor.ReadIPC(bytes.NewReader(stream.Bytes()), tensor.WithIPCAllocator(dst))
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != len(in) {
				t.Fatalf("%d tensors back, want %d", len(out), len(in))
			}
			defer func() {
				// The views share one body: release them concurrently.
				var wg sync.WaitGroup
				for _, nt := range out {
					wg.Go(nt.Tensor.Release)
				}
				wg.Wait()
			}()
			for i, nt := range out {
				if nt.Name != in[i].Name {
					t.Fatalf("tensor %d is %q, want %q", i, nt.Name, in[i].Name)
				}
				sameTensor(t, nt.Tensor, in[i].Tensor)
				sameBytes(t, nt.Tensor, in[i].Tensor)
				// (New's strides for a shape like [2 0 3] fail IsContiguous.)
				if !nt.Tensor.IsContiguous() && nt.Tensor.NumElements() != 0 {
					t.Fatalf("%q came back strided", nt.Name)
				}
			}
		})
	}
}

func TestIPCEmptyList(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var stream bytes.Buffer
	if err := tensor.WriteIPC(&stream, nil); err != nil {
		t.Fatal(err)
	}
	out, err := tensor.ReadIPC(&stream, tensor.WithIPCAllocator(mem))
	if err != nil || len(out) != 0 {
		t.Fatalf("%v %v", out, err)
	}
}

func TestIPCWriteErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	x := filled(t, mem, tensor.Float32, 2, 3)
	defer x.Release()
	d, err := tensor.FromDevice(tensor.Float32, []int{2}, fakeDevice{8})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   []tensor.NamedTensor
		want error
	}{
		{"duplicate name", []tensor.NamedTensor{{"a", x}, {"a", x}}, nil},
		{"device tensor", []tensor.NamedTensor{{"a", x}, {"d", d}}, tensor.ErrDevice},
		{"nil tensor", []tensor.NamedTensor{{"a", x}, {"n", nil}}, tensor.ErrShape},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stream bytes.Buffer
			err := tensor.WriteIPC(&stream, tc.in, tensor.WithIPCAllocator(mem))
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if stream.Len() != 0 {
				t.Fatalf("%d bytes written before the error", stream.Len())
			}
		})
	}
	if err := tensor.WriteIPC(failingWriter{}, []tensor.NamedTensor{{"a", x}}, tensor.WithIPCAllocator(mem)); err == nil {
		t.Fatal("a failing writer gave no error")
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// validStream returns a WriteIPC stream of a few tensors.
func validStream(t testing.TB, dts ...tensor.DType) []byte {
	t.Helper()
	var in []tensor.NamedTensor
	for _, dt := range dts {
		x := filled(t, memory.DefaultAllocator, dt, 2, 3)
		defer x.Release()
		s := filled(t, memory.DefaultAllocator, dt)
		defer s.Release()
		e := filled(t, memory.DefaultAllocator, dt, 0, 2)
		defer e.Release()
		in = append(in, tensor.NamedTensor{Name: dt.String(), Tensor: x},
			tensor.NamedTensor{Name: dt.String() + " scalar", Tensor: s},
			tensor.NamedTensor{Name: dt.String() + " empty", Tensor: e})
	}
	var stream bytes.Buffer
	if err := tensor.WriteIPC(&stream, in); err != nil {
		t.Fatal(err)
	}
	return stream.Bytes()
}

// arrowStream writes record batches with arrow's own IPC writer.
func arrowStream(t testing.TB, schema *arrow.Schema, opts []ipc.Option, recs ...arrow.RecordBatch) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, append([]ipc.Option{ipc.WithSchema(schema)}, opts...)...)
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// column returns a one-column record of a fixed-shape column made from batch.
func column(t testing.TB, batch *tensor.Tensor) arrow.RecordBatch {
	t.Helper()
	arr, err := tensor.NewFixedShapeTensorArray(batch)
	if err != nil {
		t.Fatal(err)
	}
	defer arr.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arr.DataType()}}, nil)
	return array.NewRecordBatch(schema, []arrow.Array{arr}, int64(arr.Len()))
}

func TestIPCReadForeignStreams(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	// A permuted column, as another writer may send: a permuted view.
	phys := filled(t, mem, tensor.Int32, 1, 2, 3, 4)
	defer phys.Release()
	logical, _ := phys.Permute(0, 3, 1, 2)
	defer logical.Release()
	rec := column(t, logical)
	defer rec.Release()
	out, err := tensor.ReadIPC(bytes.NewReader(arrowStream(t, rec.Schema(), nil, rec)), tensor.WithIPCAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := logical.Index(0, 0)
	defer want.Release()
	sameTensor(t, out[0].Tensor, want)
	if !slices.Equal(out[0].Tensor.Shape(), []int{4, 2, 3}) || out[0].Tensor.IsContiguous() {
		t.Fatalf("permuted column read as %v", out[0].Tensor)
	}
	out[0].Tensor.Release()

	// A compressed stream reads, within the limit and not past it.
	zeros, err := tensor.New(tensor.Float32, []int{1, 256, 1024}, tensor.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer zeros.Release()
	zrec := column(t, zeros)
	defer zrec.Release()
	for _, codec := range []ipc.Option{ipc.WithZstd(), ipc.WithLZ4()} {
		z := arrowStream(t, zrec.Schema(), []ipc.Option{codec, ipc.WithAllocator(mem)}, zrec)
		if len(z) > 64<<10 {
			t.Fatalf("compressed stream of %d bytes", len(z))
		}
		out, err = tensor.ReadIPC(bytes.NewReader(z), tensor.WithIPCAllocator(mem))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(out[0].Tensor.Shape(), []int{256, 1024}) || out[0].Tensor.At(255, 1023) != 0 {
			t.Fatalf("compressed: %v", out[0].Tensor)
		}
		out[0].Tensor.Release()
		// 1 MiB decompressed from a few KiB: the limit stops it.
		_, err = tensor.ReadIPC(bytes.NewReader(z), tensor.WithIPCAllocator(mem), tensor.WithIPCMaxBytes(64<<10))
		if err == nil || !strings.Contains(err.Error(), "WithIPCMaxBytes") {
			t.Fatalf("decompressing past the limit: %v", err)
		}
	}
}

func TestIPCReadErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	x := filled(t, mem, tensor.Float32, 2, 3)
	defer x.Release()
	two := column(t, x) // two rows
	defer two.Release()
	r1, _ := x.Slice(0, 0, 1)
	defer r1.Release()
	one := column(t, r1)
	defer one.Release()
	r0, _ := x.Slice(0, 0, 0)
	defer r0.Release()
	none := column(t, r0)
	defer none.Release()

	ib := array.NewInt32Builder(mem)
	ib.Append(1)
	plain := ib.NewArray()
	ib.Release()
	defer plain.Release()
	plainSchema := arrow.NewSchema([]arrow.Field{{Name: "p", Type: plain.DataType()}}, nil)
	plainRec := array.NewRecordBatch(plainSchema, []arrow.Array{plain}, 1)
	defer plainRec.Release()

	listRec := func(md arrow.Metadata) arrow.RecordBatch {
		lb := array.NewListBuilder(mem, arrow.PrimitiveTypes.Float32)
		lb.Append(true)
		arr := lb.NewArray()
		lb.Release()
		defer arr.Release()
		s := arrow.NewSchema([]arrow.Field{{Name: "l", Type: arr.DataType(), Metadata: md}}, nil)
		return array.NewRecordBatch(s, []arrow.Array{arr}, 1)
	}
	noShape := listRec(arrow.Metadata{})
	defer noShape.Release()
	badShape := listRec(arrow.NewMetadata([]string{tensor.IPCShapeKey}, []string{"[2,"}))
	defer badShape.Release()
	fullShape := listRec(arrow.NewMetadata([]string{tensor.IPCShapeKey}, []string{"[2,3]"}))
	defer fullShape.Release()

	big := filled(t, mem, tensor.Float32, 1, 64, 64)
	defer big.Release()
	bigRec := column(t, big)
	defer bigRec.Release()

	for _, tc := range []struct {
		name   string
		stream []byte
		opts   []tensor.IPCOption
		want   error
	}{
		{"nothing", nil, nil, nil},
		{"garbage", []byte("not an arrow stream at all"), nil, nil},
		{"schema only", arrowStream(t, one.Schema(), nil), nil, nil},
		{"two record batches", arrowStream(t, one.Schema(), nil, one, one), nil, nil},
		{"two rows", arrowStream(t, two.Schema(), nil, two), nil, nil},
		{"no rows", arrowStream(t, none.Schema(), nil, none), nil, nil},
		{"not a tensor column", arrowStream(t, plainSchema, nil, plainRec), nil, tensor.ErrDType},
		{"list without a shape", arrowStream(t, noShape.Schema(), nil, noShape), nil, tensor.ErrDType},
		{"list with a bad shape", arrowStream(t, badShape.Schema(), nil, badShape), nil, tensor.ErrShape},
		{"list with elements", arrowStream(t, fullShape.Schema(), nil, fullShape), nil, tensor.ErrShape},
		{"over the limit", arrowStream(t, bigRec.Schema(), nil, bigRec), []tensor.IPCOption{tensor.WithIPCMaxBytes(8 << 10)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tensor.ReadIPC(bytes.NewReader(tc.stream), append(tc.opts, tensor.WithIPCAllocator(mem))...)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("got %v, %v; want an error (%v)", out, err, tc.want)
			}
		})
	}
	// Within the limit, the same stream reads.
	out, err := tensor.ReadIPC(bytes.NewReader(arrowStream(t, bigRec.Schema(), nil, bigRec)),
		tensor.WithIPCAllocator(mem), tensor.WithIPCMaxBytes(32<<10))
	if err != nil {
		t.Fatal(err)
	}
	out[0].Tensor.Release()
}

// TestIPCReadDamagedStreams cuts a valid stream at every length and flips
// every byte: each read returns an error or tensors, never panics, and
// leaves nothing allocated.
func TestIPCReadDamagedStreams(t *testing.T) {
	full := validStream(t, tensor.Float32, tensor.BFloat16)
	read := func(t *testing.T, data []byte) ([]tensor.NamedTensor, error) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		out, err := tensor.ReadIPC(bytes.NewReader(data), tensor.WithIPCAllocator(mem), tensor.WithIPCMaxBytes(1<<20))
		for _, nt := range out {
			nt.Tensor.Release()
		}
		return out, err
	}
	t.Run("truncated", func(t *testing.T) {
		for n := 0; n < len(full); n++ {
			out, err := read(t, full[:n])
			// Only the end-of-stream marker (8 bytes) may be missing.
			if err == nil && n < len(full)-8 {
				t.Fatalf("%d of %d bytes read as %d tensors", n, len(full), len(out))
			}
		}
	})
	t.Run("flipped", func(t *testing.T) {
		for i := range full {
			data := slices.Clone(full)
			data[i] ^= 0xff
			read(t, data)
		}
	})
}

func FuzzReadIPC(f *testing.F) {
	f.Add(validStream(f, tensor.Float32))
	f.Add(validStream(f, allDTypes...))
	f.Add(validStream(f))
	phys := filled(f, memory.DefaultAllocator, tensor.Int64, 2, 2, 3)
	logical, _ := phys.Permute(0, 2, 1)
	rec := column(f, logical)
	f.Add(arrowStream(f, rec.Schema(), nil, rec))
	f.Add(arrowStream(f, rec.Schema(), []ipc.Option{ipc.WithZstd()}, rec))
	f.Add(arrowStream(f, rec.Schema(), []ipc.Option{ipc.WithLZ4()}, rec))
	rec.Release()
	logical.Release()
	phys.Release()
	f.Fuzz(func(t *testing.T, data []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		out, err := tensor.ReadIPC(bytes.NewReader(data), tensor.WithIPCAllocator(mem), tensor.WithIPCMaxBytes(1<<20))
		if err != nil {
			return
		}
		defer func() {
			for _, nt := range out {
				nt.Tensor.Release()
			}
		}()
		// What reads writes back, and reads back the same.
		names := map[string]bool{}
		for _, nt := range out {
			if names[nt.Name] {
				return // WriteIPC refuses duplicate names
			}
			names[nt.Name] = true
		}
		var stream bytes.Buffer
		if err := tensor.WriteIPC(&stream, out, tensor.WithIPCAllocator(mem)); err != nil {
			t.Fatalf("writing what was read: %v", err)
		}
		again, err := tensor.ReadIPC(&stream, tensor.WithIPCAllocator(mem))
		if err != nil {
			t.Fatalf("reading what was written: %v", err)
		}
		for i, nt := range again {
			if nt.Name != out[i].Name {
				t.Fatalf("name %q, want %q", nt.Name, out[i].Name)
			}
			sameBytes(t, nt.Tensor, out[i].Tensor)
			if !tensor.SameShape(nt.Tensor.Shape(), out[i].Tensor.Shape()) {
				t.Fatalf("%q: shape %v, want %v", nt.Name, nt.Tensor.Shape(), out[i].Tensor.Shape())
			}
			nt.Tensor.Release()
		}
	})
}
