package safetensors_test

import (
	"bytes"
	"errors"
	"maps"
	"testing"

	"github.com/omniflow-go/omniflow/tensor"
	"github.com/omniflow-go/omniflow/tensor/safetensors"
)

// FuzzParse checks that Parse never panics, that it accepts only files
// whose every tensor can be read at its declared size, and that writing
// what it read and parsing that again gives the same tensors back.
func FuzzParse(f *testing.F) {
	for i, dt := range allDTypes {
		f.Add(mustWrite(f, map[string]*tensor.Tensor{
			"w": filled(f, dt, byte(i), 2, 3),
			"s": filled(f, dt, byte(i), []int{}...),
			"e": filled(f, dt, byte(i), 0),
		}, map[string]string{"format": "pt"}))
	}
	for _, tc := range validFiles {
		f.Add(tc.file)
	}
	for _, tc := range invalidFiles {
		f.Add(tc.file)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := safetensors.Parse(data)
		if err != nil {
			if !errors.Is(err, safetensors.ErrInvalid) {
				t.Fatalf("Parse error %v is not ErrInvalid", err)
			}
			return
		}
		read := map[string]*tensor.Tensor{}
		total := 0
		for _, name := range file.Names() {
			dt, shape, size, err := file.Info(name)
			total += size
			if errors.Is(err, safetensors.ErrUnsupportedDType) {
				if _, err := file.Tensor(name); !errors.Is(err, safetensors.ErrUnsupportedDType) {
					t.Fatalf("%q: Info says unsupported, Tensor says %v", name, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("Info(%q): %v", name, err)
			}
			v, err := file.Tensor(name)
			if err != nil {
				t.Fatalf("Tensor(%q): %v", name, err)
			}
			c, err := file.TensorCopy(name)
			if err != nil {
				t.Fatalf("TensorCopy(%q): %v", name, err)
			}
			if v.DType() != dt || !tensor.SameShape(v.Shape(), shape) || v.SizeBytes() != size {
				t.Fatalf("%q: Tensor is %v, Info says %v %v %d bytes", name, v, dt, shape, size)
			}
			if size > 0 && !bytes.Equal(v.Bytes(), c.Bytes()) {
				t.Fatalf("%q: Tensor and TensorCopy differ", name)
			}
			if name != "" {
				read[name] = v
			}
		}
		if total > len(data) {
			t.Fatalf("tensors hold %d bytes in a %d-byte file", total, len(data))
		}
		if len(read) != len(file.Names()) {
			return // unsupported dtypes or names the writer rejects
		}
		var buf bytes.Buffer
		if err := safetensors.Write(&buf, read, file.Metadata()); err != nil {
			t.Fatalf("Write of what Parse read: %v", err)
		}
		again, err := safetensors.Parse(buf.Bytes())
		if err != nil {
			t.Fatalf("Parse of what Write wrote: %v", err)
		}
		if !maps.Equal(again.Metadata(), file.Metadata()) {
			t.Fatalf("metadata %q became %q", file.Metadata(), again.Metadata())
		}
		for name, want := range read {
			got, err := again.Tensor(name)
			if err != nil {
				t.Fatal(err)
			}
			sameTensor(t, name, got, want)
		}
	})
}
