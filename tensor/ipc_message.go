package tensor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// ipcMessages reads the messages of an IPC stream for ipc.Reader, in place
// of ipc.NewMessageReader, so as to check each message's flatbuffer
// metadata before arrow parses it. arrow-go sizes slices by the lengths of
// vectors in the metadata without checking them against the buffer, and
// follows nested fields without a depth limit: a corrupt length, or a
// field that is its own child, would exhaust memory or the stack, which is
// fatal rather than a panic arrow could recover. It accepts only what
// ReadIPC reads: a schema, then record batches.
type ipcMessages struct {
	r       io.Reader
	mem     memory.Allocator
	maxMeta int64
	maxBody int64 // <= 0: none
	msg     *ipc.Message
	refs    atomic.Int64
}

func newIPCMessages(r io.Reader, mem memory.Allocator, maxMeta, maxBody int64) *ipcMessages {
	m := &ipcMessages{r: r, mem: mem, maxMeta: maxMeta, maxBody: maxBody}
	m.refs.Store(1)
	return m
}

func (m *ipcMessages) Retain() { m.refs.Add(1) }

func (m *ipcMessages) Release() {
	if m.refs.Add(-1) == 0 && m.msg != nil {
		m.msg.Release()
		m.msg = nil
	}
}

// Message returns the next message, valid until the next call; io.EOF at
// the end-of-stream marker or a clean end of input, as arrow's reader has
// it.
func (m *ipcMessages) Message() (*ipc.Message, error) {
	var word [4]byte
	if _, err := io.ReadFull(m.r, word[:]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("reading a message: %w", err)
	}
	n := binary.LittleEndian.Uint32(word[:])
	if n == 0xFFFFFFFF { // continuation marker, then the length
		if _, err := io.ReadFull(m.r, word[:]); err != nil {
			return nil, fmt.Errorf("reading a message length: %w", noEOF(err))
		}
		n = binary.LittleEndian.Uint32(word[:])
	}
	if n == 0 {
		return nil, io.EOF // end-of-stream marker
	}
	if n < 4 || n > math.MaxInt32 || int64(n) > m.maxMeta {
		return nil, fmt.Errorf("message metadata of %d bytes (limit %d)", n, m.maxMeta)
	}
	meta := make([]byte, n)
	if _, err := io.ReadFull(m.r, meta); err != nil {
		return nil, fmt.Errorf("reading message metadata: %w", noEOF(err))
	}
	bodyLen, err := verifyIPCMessage(meta)
	if err != nil {
		return nil, fmt.Errorf("message metadata: %w", err)
	}
	if bodyLen < 0 || bodyLen > math.MaxInt || (m.maxBody > 0 && bodyLen > m.maxBody) {
		return nil, fmt.Errorf("message body of %d bytes (limit %d, WithIPCMaxBytes)", bodyLen, m.maxBody)
	}
	body, err := m.allocate(int(bodyLen))
	if err != nil {
		return nil, err
	}
	defer body.Release()
	if _, err := io.ReadFull(m.r, body.Bytes()); err != nil {
		return nil, fmt.Errorf("reading a message body: %w", noEOF(err))
	}
	if m.msg != nil {
		m.msg.Release()
	}
	m.msg = ipc.NewMessage(memory.NewBufferBytes(meta), body)
	return m.msg, nil
}

// allocate returns a buffer of n bytes, turning the limited allocator's
// panic into an error.
func (m *ipcMessages) allocate(n int) (buf *memory.Buffer, err error) {
	buf = memory.NewResizableBuffer(m.mem)
	defer func() {
		if p := recover(); p != nil {
			e, ok := p.(error)
			if !ok {
				panic(p)
			}
			buf.Release()
			buf, err = nil, e
		}
	}()
	buf.Resize(n)
	return buf, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Flatbuffer slots (vtable entries) of the IPC metadata tables arrow-go
// reads (format/Message.fbs and format/Schema.fbs).
const (
	msgHeaderType     = 1
	msgHeader         = 2
	msgBodyLength     = 3
	msgCustomMetadata = 4

	headerSchema      = 1
	headerRecordBatch = 3

	schemaFields         = 1
	schemaCustomMetadata = 2
	schemaFeatures       = 3

	fieldName           = 0
	fieldType           = 3
	fieldDictionary     = 4
	fieldChildren       = 5
	fieldCustomMetadata = 6

	dictIndexType = 1

	batchNodes         = 1
	batchBuffers       = 2
	batchCompression   = 3
	batchVariadicCount = 4

	maxFieldDepth = 64
)

var errFlatbuffer = errors.New("corrupt flatbuffer")

// verifyIPCMessage checks the parts of a message's flatbuffer that arrow-go
// trusts (tables, vectors and strings lie inside the buffer; fields nest at
// most maxFieldDepth deep; no more tables than the buffer can hold) and
// returns the body length.
func verifyIPCMessage(buf []byte) (bodyLen int64, err error) {
	v := &fbVerifier{buf: buf, budget: len(buf)/4 + 1}
	root, err := v.ref(0)
	if err != nil {
		return 0, err
	}
	msg, err := v.table(root)
	if err != nil {
		return 0, err
	}
	var typ byte
	if p, err := v.field(msg, msgHeaderType, 1); err != nil {
		return 0, err
	} else if p >= 0 {
		typ = buf[p]
	}
	if p, err := v.field(msg, msgBodyLength, 8); err != nil {
		return 0, err
	} else if p >= 0 {
		bodyLen = int64(binary.LittleEndian.Uint64(buf[p:]))
	}
	if err := v.keyValues(msg, msgCustomMetadata); err != nil {
		return 0, err
	}
	if typ != headerSchema && typ != headerRecordBatch {
		return 0, fmt.Errorf("message type %d: want a schema or a record batch", typ)
	}
	hdr, ok, err := v.child(msg, msgHeader)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("%w: message without a header", errFlatbuffer)
	}
	if typ == headerSchema {
		err = v.schema(hdr)
	} else {
		err = v.recordBatch(hdr, bodyLen)
	}
	return bodyLen, err
}

type fbVerifier struct {
	buf    []byte
	budget int // tables left to visit
}

type fbTable struct{ pos, vt, vtSize, size int64 }

func (v *fbVerifier) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errFlatbuffer}, args...)...)
}

func (v *fbVerifier) u32(p int64) (int64, error) {
	if p < 0 || p+4 > int64(len(v.buf)) {
		return 0, v.errorf("offset %d outside %d bytes", p, len(v.buf))
	}
	return int64(binary.LittleEndian.Uint32(v.buf[p:])), nil
}

// ref follows the unsigned offset stored at p.
func (v *fbVerifier) ref(p int64) (int64, error) {
	o, err := v.u32(p)
	if err != nil {
		return 0, err
	}
	if p+o >= int64(len(v.buf)) {
		return 0, v.errorf("reference to %d outside %d bytes", p+o, len(v.buf))
	}
	return p + o, nil
}

func (v *fbVerifier) table(pos int64) (fbTable, error) {
	if v.budget--; v.budget < 0 {
		return fbTable{}, v.errorf("more tables than %d bytes hold", len(v.buf))
	}
	so, err := v.u32(pos)
	if err != nil {
		return fbTable{}, err
	}
	vt := pos - int64(int32(uint32(so)))
	if vt < 0 || vt+4 > int64(len(v.buf)) {
		return fbTable{}, v.errorf("vtable at %d outside %d bytes", vt, len(v.buf))
	}
	vtSize := int64(binary.LittleEndian.Uint16(v.buf[vt:]))
	size := int64(binary.LittleEndian.Uint16(v.buf[vt+2:]))
	if vtSize < 4 || vtSize%2 != 0 || vt+vtSize > int64(len(v.buf)) || size < 4 || pos+size > int64(len(v.buf)) {
		return fbTable{}, v.errorf("table at %d (vtable %d bytes, table %d bytes) outside %d bytes", pos, vtSize, size, len(v.buf))
	}
	return fbTable{pos: pos, vt: vt, vtSize: vtSize, size: size}, nil
}

// field returns the position of slot i of t, holding size bytes, or -1
// when the slot is absent.
func (v *fbVerifier) field(t fbTable, i int, size int64) (int64, error) {
	e := 4 + 2*int64(i)
	if e+2 > t.vtSize {
		return -1, nil
	}
	off := int64(binary.LittleEndian.Uint16(v.buf[t.vt+e:]))
	if off == 0 {
		return -1, nil
	}
	if off+size > t.size {
		return 0, v.errorf("slot %d at %d past the table's %d bytes", i, off, t.size)
	}
	return t.pos + off, nil
}

// child returns the table referenced by slot i of t.
func (v *fbVerifier) child(t fbTable, i int) (fbTable, bool, error) {
	p, err := v.field(t, i, 4)
	if err != nil || p < 0 {
		return fbTable{}, false, err
	}
	pos, err := v.ref(p)
	if err != nil {
		return fbTable{}, false, err
	}
	c, err := v.table(pos)
	return c, err == nil, err
}

// vector checks the vector in slot i of t and returns where its elements
// start and how many there are.
func (v *fbVerifier) vector(t fbTable, i int, elemSize int64) (start, n int64, err error) {
	p, err := v.field(t, i, 4)
	if err != nil || p < 0 {
		return 0, 0, err
	}
	vec, err := v.ref(p)
	if err != nil {
		return 0, 0, err
	}
	if n, err = v.u32(vec); err != nil {
		return 0, 0, err
	}
	if vec+4+n*elemSize > int64(len(v.buf)) {
		return 0, 0, v.errorf("vector of %d elements of %d bytes at %d outside %d bytes", n, elemSize, vec, len(v.buf))
	}
	return vec + 4, n, nil
}

// tables checks the vector of tables in slot i of t, calling each on them.
func (v *fbVerifier) tables(t fbTable, i int, each func(fbTable) error) error {
	start, n, err := v.vector(t, i, 4)
	if err != nil {
		return err
	}
	for k := int64(0); k < n; k++ {
		pos, err := v.ref(start + 4*k)
		if err != nil {
			return err
		}
		c, err := v.table(pos)
		if err != nil {
			return err
		}
		if err := each(c); err != nil {
			return err
		}
	}
	return nil
}

func (v *fbVerifier) keyValues(t fbTable, i int) error {
	return v.tables(t, i, func(kv fbTable) error {
		if _, _, err := v.vector(kv, 0, 1); err != nil {
			return err
		}
		_, _, err := v.vector(kv, 1, 1)
		return err
	})
}

func (v *fbVerifier) schema(s fbTable) error {
	if err := v.tables(s, schemaFields, func(f fbTable) error { return v.arrowField(f, 0) }); err != nil {
		return err
	}
	if err := v.keyValues(s, schemaCustomMetadata); err != nil {
		return err
	}
	_, _, err := v.vector(s, schemaFeatures, 8)
	return err
}

func (v *fbVerifier) arrowField(f fbTable, depth int) error {
	if depth > maxFieldDepth {
		return v.errorf("fields nested more than %d deep", maxFieldDepth)
	}
	if _, _, err := v.vector(f, fieldName, 1); err != nil {
		return err
	}
	if _, _, err := v.child(f, fieldType); err != nil {
		return err
	}
	if d, ok, err := v.child(f, fieldDictionary); err != nil {
		return err
	} else if ok {
		if _, _, err := v.child(d, dictIndexType); err != nil {
			return err
		}
	}
	if err := v.keyValues(f, fieldCustomMetadata); err != nil {
		return err
	}
	return v.tables(f, fieldChildren, func(c fbTable) error { return v.arrowField(c, depth+1) })
}

// recordBatch also checks that every buffer lies in the body (arrow-go
// retains the body before it slices it, and leaks the reference when the
// slice is out of range) and that node lengths and null counts are sane.
func (v *fbVerifier) recordBatch(b fbTable, bodyLen int64) error {
	start, n, err := v.vector(b, batchNodes, 16)
	if err != nil {
		return err
	}
	for k := int64(0); k < n; k++ {
		p := start + 16*k
		length := int64(binary.LittleEndian.Uint64(v.buf[p:]))
		nulls := int64(binary.LittleEndian.Uint64(v.buf[p+8:]))
		if length < 0 || nulls < 0 || nulls > length {
			return v.errorf("node %d: length %d with %d nulls", k, length, nulls)
		}
	}
	_, compressed, err := v.child(b, batchCompression)
	if err != nil {
		return err
	}
	if start, n, err = v.vector(b, batchBuffers, 16); err != nil {
		return err
	}
	for k := int64(0); k < n; k++ {
		p := start + 16*k
		off := int64(binary.LittleEndian.Uint64(v.buf[p:]))
		length := int64(binary.LittleEndian.Uint64(v.buf[p+8:]))
		if off < 0 || length < 0 || off > bodyLen || length > bodyLen-off || (compressed && length != 0 && length < 8) {
			return v.errorf("buffer %d: [%d, +%d) outside a body of %d bytes", k, off, length, bodyLen)
		}
	}
	_, _, err = v.vector(b, batchVariadicCount, 8)
	return err
}
