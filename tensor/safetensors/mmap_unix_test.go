//go:build unix

package safetensors_test

import (
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/omniflow-go/omniflow/tensor"
	"github.com/omniflow-go/omniflow/tensor/safetensors"
)

// TestOpenViewIsReadOnly shows what Tensor's documentation warns about:
// a view of a mapped file is read-only memory, and writing into it faults.
// SetPanicOnFault turns the fault into a panic this test can recover;
// without it the process dies.
func TestOpenViewIsReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	want := filled(t, tensor.Float32, 0, 16)
	if err := safetensors.WriteFile(path, map[string]*tensor.Tensor{"w": want}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := f.Tensor("w")
	if err != nil {
		t.Fatal(err)
	}
	sameTensor(t, "w", v, want) // reading is fine

	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	faulted := func() (faulted bool) {
		defer func() {
			if r := recover(); r != nil {
				_, faulted = r.(interface{ Addr() uintptr })
			}
		}()
		v.Float32s()[0] = 1
		return false
	}()
	if !faulted {
		t.Fatal("writing into a mapped view did not fault")
	}

	// A copy is ordinary memory.
	c, err := f.TensorCopy("w")
	if err != nil {
		t.Fatal(err)
	}
	c.Float32s()[0] = 1
}
