package safetensors_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/omniflow-go/omniflow/tensor"
	"github.com/omniflow-go/omniflow/tensor/safetensors"
)

func Example() {
	dir, err := os.MkdirTemp("", "safetensors-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "model.safetensors")

	// Write two tensors and a metadata entry.
	w, _ := tensor.FromFloat32([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	step, _ := tensor.FromInt64([]int64{1000}) // a scalar, shape []
	err = safetensors.WriteFile(path, map[string]*tensor.Tensor{"linear.weight": w, "step": step},
		map[string]string{"format": "pt"})
	if err != nil {
		log.Fatal(err)
	}

	// Read them back: Open maps the file; Tensor returns read-only views.
	f, err := safetensors.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	for _, name := range f.Names() {
		dt, shape, size, _ := f.Info(name)
		fmt.Printf("%s: %v %v, %d bytes\n", name, dt, shape, size)
	}
	fmt.Println(f.Metadata())
	v, err := f.Tensor("linear.weight")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v.Format(3))
	// TensorCopy for a tensor to modify or keep after Close.
	c, err := f.TensorCopy("step")
	if err != nil {
		log.Fatal(err)
	}
	c.Int64s()[0]++
	fmt.Println(c.Int64s()[0])
	// Output:
	// linear.weight: float32 [2 3], 24 bytes
	// step: int64 [], 8 bytes
	// map[format:pt]
	// [[1, 2, 3], [4, 5, 6]]
	// 1001
}
