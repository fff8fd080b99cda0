package tensor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// IPCShapeKey is the field metadata key holding the shape (a JSON array) of
// a tensor without elements in a WriteIPC stream.
const IPCShapeKey = "omniflow:shape"

// DefaultIPCMaxBytes is ReadIPC's default limit on the memory it allocates.
const DefaultIPCMaxBytes = 1 << 30

// NamedTensor is a tensor with a name, the unit of WriteIPC and ReadIPC.
type NamedTensor struct {
	Name   string
	Tensor *Tensor
}

// IPCOption configures WriteIPC and ReadIPC.
type IPCOption func(*ipcConfig)

type ipcConfig struct {
	mem      memory.Allocator
	maxBytes int64
}

// WithIPCAllocator allocates from mem: ReadIPC the message bodies its
// tensors share, WriteIPC the copies of non-contiguous tensors and the
// writer's scratch space. The default is DefaultAllocator for ReadIPC and
// each tensor's own allocator for WriteIPC's copies.
func WithIPCAllocator(mem memory.Allocator) IPCOption {
	return func(c *ipcConfig) { c.mem = mem }
}

// WithIPCMaxBytes limits the memory ReadIPC allocates for a stream (message
// bodies, and buffers that compressed streams decompress into) to n bytes;
// n <= 0 removes the limit. The default is DefaultIPCMaxBytes. The limit
// keeps a corrupt or hostile length from allocating without bound.
func WithIPCMaxBytes(n int64) IPCOption {
	return func(c *ipcConfig) { c.maxBytes = n }
}

func newIPCConfig(opts []IPCOption) ipcConfig {
	c := ipcConfig{maxBytes: DefaultIPCMaxBytes}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

// WriteIPC writes tensors (on the host, with distinct names) to w as an
// Arrow IPC stream of one record batch with one row and one column per
// tensor, named after it:
//
//   - a tensor with elements is an arrow.fixed_shape_tensor column of the
//     tensor's shape (a scalar's is []) and dtype (ArrowDataType; bfloat16
//     is the omniflow.bfloat16 extension over uint16), row-major without a
//     permutation, so that any Arrow reader knowing the canonical extension
//     reads it;
//   - a tensor without elements (a zero in its shape), which arrow-go cannot
//     hold in a FixedSizeList, is a List<value type> column with one empty
//     row and the shape as JSON in the field metadata under IPCShapeKey.
//
// One row with a column per tensor, because tensors of different dtypes
// and shapes cannot share a column, and the schema then names them.
// Contiguous tensors are written from their own buffers; other views are
// copied first. A tensor may have at most math.MaxInt32 elements (the
// largest FixedSizeList).
func WriteIPC(w io.Writer, tensors []NamedTensor, opts ...IPCOption) error {
	cfg := newIPCConfig(opts)
	fields := make([]arrow.Field, 0, len(tensors))
	cols := make([]arrow.Array, 0, len(tensors))
	defer func() {
		for _, c := range cols {
			c.Release()
		}
	}()
	seen := make(map[string]bool, len(tensors))
	for _, nt := range tensors {
		if seen[nt.Name] {
			return fmt.Errorf("tensor: WriteIPC: name %q used twice", nt.Name)
		}
		seen[nt.Name] = true
		col, field, err := ipcColumn(nt, cfg.mem)
		if err != nil {
			return fmt.Errorf("tensor: WriteIPC: tensor %q: %w", nt.Name, err)
		}
		cols = append(cols, col)
		fields = append(fields, field)
	}
	schema := arrow.NewSchema(fields, nil)
	rec := array.NewRecordBatch(schema, cols, 1)
	defer rec.Release()
	wopts := []ipc.Option{ipc.WithSchema(schema)}
	if cfg.mem != nil {
		wopts = append(wopts, ipc.WithAllocator(cfg.mem))
	}
	wr := ipc.NewWriter(w, wopts...)
	if err := wr.Write(rec); err != nil {
		return errors.Join(fmt.Errorf("tensor: WriteIPC: %w", err), wr.Close())
	}
	if err := wr.Close(); err != nil {
		return fmt.Errorf("tensor: WriteIPC: %w", err)
	}
	return nil
}

// ipcColumn returns the one-row column for a tensor and its field.
func ipcColumn(nt NamedTensor, mem memory.Allocator) (arrow.Array, arrow.Field, error) {
	t := nt.Tensor
	if t == nil {
		return nil, arrow.Field{}, fmt.Errorf("%w: nil tensor", ErrShape)
	}
	if !t.OnHost() {
		return nil, arrow.Field{}, fmt.Errorf("%w: %v: copy it to the host first", ErrDevice, t)
	}
	vt, err := ArrowDataType(t.dtype)
	if err != nil {
		return nil, arrow.Field{}, err
	}
	if t.NumElements() == 0 {
		shape, err := json.Marshal(t.shape)
		if err != nil {
			return nil, arrow.Field{}, err
		}
		lt := arrow.ListOf(vt)
		values := array.NewData(vt, 0, []*memory.Buffer{nil, nil}, nil, 0, 0)
		defer values.Release()
		offsets := memory.NewBufferBytes(make([]byte, 2*arrow.Int32SizeBytes)) // [0, 0]
		data := array.NewData(lt, 1, []*memory.Buffer{nil, offsets}, []arrow.ArrayData{values}, 0, 0)
		defer data.Release()
		md := arrow.NewMetadata([]string{IPCShapeKey}, []string{string(shape)})
		return array.MakeFromData(data), arrow.Field{Name: nt.Name, Type: lt, Metadata: md}, nil
	}
	var copyOpts []Option
	if mem != nil {
		copyOpts = []Option{WithAllocator(mem)}
	}
	c, err := t.Contiguous(copyOpts...)
	if err != nil {
		return nil, arrow.Field{}, err
	}
	defer c.Release()
	b, err := c.Unsqueeze(0)
	if err != nil {
		return nil, arrow.Field{}, err
	}
	defer b.Release()
	col, err := NewFixedShapeTensorArray(b)
	if err != nil {
		return nil, arrow.Field{}, err
	}
	return col, arrow.Field{Name: nt.Name, Type: col.DataType()}, nil
}

// ReadIPC reads a stream that WriteIPC wrote, or any Arrow IPC stream of
// one one-row record batch whose columns are arrow.fixed_shape_tensor (a
// permutation gives a permuted view; dim_names are dropped). The tensors,
// in schema order, are views of the stream's message body: together they
// keep it alive, and the caller releases each.
//
// The stream is untrusted: a corrupt or truncated one is an error, never a
// panic. Message metadata is checked before arrow-go parses it, the memory
// a read allocates is limited (WithIPCMaxBytes), and whatever a failed read
// allocated is freed even where arrow-go leaks a reference. ReadIPC
// registers the extension types it needs (RegisterFixedShapeTensor).
func ReadIPC(r io.Reader, opts ...IPCOption) (_ []NamedTensor, err error) {
	cfg := newIPCConfig(opts)
	if err := RegisterFixedShapeTensor(); err != nil {
		return nil, err
	}
	mem := cfg.mem
	if mem == nil {
		mem = DefaultAllocator
	}
	alloc := newReadAllocator(mem, cfg.maxBytes)
	defer func() {
		if err != nil {
			alloc.sweep() // runs last: after the reader and the tensors are released
		}
	}()
	maxMeta := int64(64 << 20) // arrow's default; schemas are small
	if cfg.maxBytes > 0 {
		maxMeta = min(maxMeta, cfg.maxBytes)
	}
	rd, err := ipc.NewReaderFromMessageReader(newIPCMessages(r, alloc, maxMeta, cfg.maxBytes), ipc.WithAllocator(alloc))
	if err != nil {
		return nil, fmt.Errorf("tensor: ReadIPC: %w", err)
	}
	defer rd.Release()
	if !rd.Next() {
		if err := rd.Err(); err != nil {
			return nil, fmt.Errorf("tensor: ReadIPC: %w", err)
		}
		return nil, errors.New("tensor: ReadIPC: the stream has no record batch")
	}
	rec := rd.RecordBatch()
	if rec.NumRows() != 1 {
		return nil, fmt.Errorf("tensor: ReadIPC: the record batch has %d rows, want 1", rec.NumRows())
	}
	out := make([]NamedTensor, 0, rec.NumCols())
	release := func() {
		for _, nt := range out {
			nt.Tensor.Release()
		}
	}
	schema := rec.Schema()
	for i, col := range rec.Columns() {
		field := schema.Field(i)
		t, err := tensorFromIPCColumn(field, col, mem)
		if err != nil {
			release()
			return nil, fmt.Errorf("tensor: ReadIPC: column %q: %w", field.Name, err)
		}
		out = append(out, NamedTensor{Name: field.Name, Tensor: t})
	}
	if rd.Next() {
		release()
		return nil, errors.New("tensor: ReadIPC: the stream has more than one record batch")
	}
	if err := rd.Err(); err != nil {
		release()
		return nil, fmt.Errorf("tensor: ReadIPC: %w", err)
	}
	return out, nil
}

func tensorFromIPCColumn(field arrow.Field, col arrow.Array, mem memory.Allocator) (*Tensor, error) {
	switch c := col.(type) {
	case *FixedShapeTensorArray:
		return c.Tensor(0)
	case *array.List:
		i := field.Metadata.FindKey(IPCShapeKey)
		if i < 0 {
			break
		}
		var shape []int
		if err := json.Unmarshal([]byte(field.Metadata.Values()[i]), &shape); err != nil || shape == nil {
			return nil, fmt.Errorf("%w: %s %q is not an array of integers", ErrShape, IPCShapeKey, field.Metadata.Values()[i])
		}
		if n, err := NumElements(shape); err != nil {
			return nil, err
		} else if n != 0 {
			return nil, fmt.Errorf("%w: a list column holds only tensors without elements, not %v", ErrShape, shape)
		}
		dt, err := DTypeFromArrow(c.DataType().(*arrow.ListType).Elem())
		if err != nil {
			return nil, err
		}
		return New(dt, shape, WithAllocator(mem))
	}
	return nil, fmt.Errorf("%w: type %s is not %s", ErrDType, col.DataType(), FixedShapeTensorExtensionName)
}

// readAllocator is the allocator of one ReadIPC call. It enforces the
// limit, panicking with an error that arrow's reader recovers (and
// ipcMessages turns into an error itself). And it remembers what is live,
// so that a failed read can free what arrow-go leaked: when it panics on
// malformed input after retaining a buffer (memory.SliceBuffer retains
// before it slices, array setData retains before it slices), nothing
// releases that reference. After a failed read nothing the read allocated
// is reachable, so sweep frees it; a later Free of a swept slice is
// ignored.
type readAllocator struct {
	mem   memory.Allocator
	limit int64 // <= 0: none
	mu    sync.Mutex
	used  int64
	live  map[*byte]int
}

func newReadAllocator(mem memory.Allocator, limit int64) *readAllocator {
	return &readAllocator{mem: mem, limit: limit, live: make(map[*byte]int)}
}

// reserve accounts for n more bytes (n may be negative).
func (a *readAllocator) reserve(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n > 0 && a.limit > 0 && a.used+int64(n) > a.limit {
		panic(fmt.Errorf("tensor: ReadIPC: allocating %d bytes would pass the limit of %d (WithIPCMaxBytes)", n, a.limit))
	}
	a.used += int64(n)
}

func (a *readAllocator) track(b []byte) {
	if len(b) == 0 {
		return
	}
	a.mu.Lock()
	a.live[unsafe.SliceData(b)] = len(b)
	a.mu.Unlock()
}

// untrack reports whether b was live.
func (a *readAllocator) untrack(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	p := unsafe.SliceData(b)
	if _, ok := a.live[p]; !ok {
		return false
	}
	delete(a.live, p)
	return true
}

func (a *readAllocator) Allocate(size int) []byte {
	checkSize(size)
	a.reserve(size)
	b := a.mem.Allocate(size)
	a.track(b)
	return b
}

func (a *readAllocator) Reallocate(size int, b []byte) []byte {
	checkSize(size)
	a.reserve(size - len(b)) // before untracking: a panic leaves b live
	if !a.untrack(b) {
		a.reserve(len(b) - size)
		panic("tensor: ReadIPC: Reallocate of memory the read does not own")
	}
	nb := a.mem.Reallocate(size, b)
	a.track(nb)
	return nb
}

// checkSize refuses a negative size (arrow-go resizes buffers by lengths
// read from the stream) before the allocator below sees it.
func checkSize(n int) {
	if n < 0 {
		panic(fmt.Errorf("tensor: ReadIPC: allocating %d bytes", n))
	}
}

func (a *readAllocator) Free(b []byte) {
	if !a.untrack(b) {
		return // swept after a failed read
	}
	a.reserve(-len(b))
	a.mem.Free(b)
}

// sweep frees everything still live (only after a failed read).
func (a *readAllocator) sweep() {
	a.mu.Lock()
	live := a.live
	a.live = make(map[*byte]int)
	a.used = 0
	a.mu.Unlock()
	for p, n := range live {
		a.mem.Free(unsafe.Slice(p, n))
	}
}
