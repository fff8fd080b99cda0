package cpu_test

import (
	"fmt"

	"github.com/omniflow-go/omniflow/device/cpu"
)

// C = A·Bᵀ for a 2×3 A and a B stored as 2×3 (so op(B) is 3×2), the shape
// of attention's QKᵀ.
func ExampleSgemm() {
	a := []float32{
		1, 2, 3,
		4, 5, 6,
	}
	b := []float32{
		1, 0, 1,
		0, 1, 0,
	}
	c := make([]float32, 2*2)
	cpu.Sgemm(0, false, true, 2, 2, 3, 1, a, 3, b, 3, 0, c, 2)
	fmt.Println(c)
	// Output: [4 2 10 5]
}

// Two independent 2×2 products in one call, one matrix after the other in
// each slice (stride 4).
func ExampleSgemmBatched() {
	a := []float32{1, 0, 0, 1 /* second */, 2, 0, 0, 2}
	b := []float32{1, 2, 3, 4 /* second */, 1, 1, 1, 1}
	c := make([]float32, 8)
	cpu.SgemmBatched(0, false, false, 2, 2, 2, 2, 1, a, 4, 2, b, 4, 2, 0, c, 4, 2)
	fmt.Println(c[:4], c[4:])
	// Output: [1 2 3 4] [2 2 2 2]
}
