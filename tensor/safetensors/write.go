package safetensors

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/omniflow-go/omniflow/tensor"
)

type outTensor struct {
	name string
	spec *dtypeSpec
	t    *tensor.Tensor
	size int
}

// Write writes tensors and metadata (may be nil) as a safetensors file.
//
// The output is deterministic and laid out as the reference writer lays it
// out: tensors ordered by decreasing dtype alignment (8-byte dtypes first,
// U8 last), then by name, so that every tensor starts at a multiple of its
// element size; the header lists them in that order, after
// "__metadata__" (omitted when empty, keys sorted), and is padded with
// spaces to a multiple of 8 bytes so the data starts aligned.
// Non-contiguous tensors are written as their contiguous copies.
//
// Names must be non-empty, valid UTF-8 and not "__metadata__"; device
// tensors must be copied to the host first. Nothing is written when a
// tensor or name is rejected.
func Write(w io.Writer, tensors map[string]*tensor.Tensor, metadata map[string]string) error {
	out := make([]outTensor, 0, len(tensors))
	for _, name := range slices.Sorted(maps.Keys(tensors)) { // sorted: the first bad name is always the same
		t := tensors[name]
		switch {
		case name == "":
			return errors.New("safetensors: write: empty tensor name")
		case name == metadataKey:
			return fmt.Errorf("safetensors: write: tensor name %q is reserved for metadata", name)
		case !utf8.ValidString(name):
			return fmt.Errorf("safetensors: write: tensor name %q is not valid UTF-8", name)
		case t == nil:
			return fmt.Errorf("safetensors: write: tensor %q is nil", name)
		case !t.OnHost():
			return fmt.Errorf("safetensors: write: tensor %q: %w: %v is not in host memory", name, tensor.ErrDevice, t)
		}
		spec := specOf(t.DType())
		if spec == nil {
			return fmt.Errorf("safetensors: write: tensor %q: %w %v", name, ErrUnsupportedDType, t.DType())
		}
		out = append(out, outTensor{name: name, spec: spec, t: t, size: t.SizeBytes()})
	}
	for k, v := range metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("safetensors: write: metadata %q: %q is not valid UTF-8", k, v)
		}
	}
	slices.SortFunc(out, func(a, b outTensor) int {
		return cmp.Or(cmp.Compare(b.spec.rank, a.spec.rank), cmp.Compare(a.name, b.name))
	})

	hdr := encodeHeader(out, metadata)
	if len(hdr)-8 > MaxHeaderSize {
		return fmt.Errorf("safetensors: write: header of %d bytes exceeds the limit of %d", len(hdr)-8, MaxHeaderSize)
	}
	if _, err := w.Write(hdr); err != nil {
		return fmt.Errorf("safetensors: write header: %w", err)
	}
	for _, o := range out {
		if err := writeData(w, o); err != nil {
			return fmt.Errorf("safetensors: write tensor %q: %w", o.name, err)
		}
	}
	return nil
}

// encodeHeader returns the 8-byte size and the padded JSON header, in the
// reference writer's compact format.
func encodeHeader(out []outTensor, metadata map[string]string) []byte {
	b := make([]byte, 8, 8+64+96*len(out))
	b = append(b, '{')
	if len(metadata) > 0 {
		b = appendString(b, metadataKey)
		b = append(b, ":{"...)
		for i, k := range slices.Sorted(maps.Keys(metadata)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, metadata[k])
		}
		b = append(b, '}')
		if len(out) > 0 {
			b = append(b, ',')
		}
	}
	off := 0
	for i, o := range out {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, o.name)
		b = append(b, `:{"dtype":`...)
		b = appendString(b, o.spec.name)
		b = append(b, `,"shape":[`...)
		for j, d := range o.t.Shape() {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(d), 10)
		}
		b = append(b, `],"data_offsets":[`...)
		b = strconv.AppendInt(b, int64(off), 10)
		b = append(b, ',')
		off += o.size
		b = strconv.AppendInt(b, int64(off), 10)
		b = append(b, "]}"...)
	}
	b = append(b, '}')
	for (len(b)-8)%8 != 0 {
		b = append(b, ' ')
	}
	binary.LittleEndian.PutUint64(b, uint64(len(b)-8))
	return b
}

// appendString appends s as a JSON string, escaping what serde_json (the
// reference writer's encoder) escapes: quote, backslash and control
// characters. s is valid UTF-8.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\b':
			b = append(b, '\\', 'b')
		case c == '\f':
			b = append(b, '\\', 'f')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// writeData writes one tensor's bytes, little-endian and row-major.
func writeData(w io.Writer, o outTensor) error {
	if o.size == 0 {
		return nil
	}
	c, err := o.t.Contiguous()
	if err != nil {
		return err
	}
	defer c.Release()
	data := c.Bytes()
	if !hostLittleEndian && o.spec.dt.Size() > 1 {
		data = slices.Clone(data)
		swapBytes(data, o.spec.dt.Size())
	}
	_, err = w.Write(data)
	return err
}

// WriteFile writes the file at path atomically: into a temporary file in
// the same directory, synced, then renamed over path, so that readers see
// the old file or the complete new one (and mappings of the old file stay
// valid). The file's mode is 0644.
func WriteFile(path string, tensors map[string]*tensor.Tensor, metadata map[string]string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := Write(bw, tensors, metadata); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}
