package tensor_test

import (
	"bytes"
	"fmt"

	"github.com/omniflow-go/omniflow/tensor"
)

// Tensors go into an Arrow IPC stream and come back with their names,
// dtypes, shapes and values; a transposed view is written row-major.
func ExampleWriteIPC() {
	hidden, _ := tensor.FromFloat32([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	ids, _ := tensor.FromInt64([]int64{7, 8, 9}, 3)
	half, _ := hidden.ConvertTo(tensor.BFloat16)
	halfT, _ := half.Transpose(0, 1)
	defer half.Release()
	defer halfT.Release()

	var stream bytes.Buffer
	err := tensor.WriteIPC(&stream, []tensor.NamedTensor{
		{Name: "hidden", Tensor: hidden},
		{Name: "ids", Tensor: ids},
		{Name: "hidden_t_bf16", Tensor: halfT},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	got, err := tensor.ReadIPC(&stream)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, nt := range got {
		fmt.Println(nt.Name, nt.Tensor.DType(), nt.Tensor.Shape(), nt.Tensor.Format(4))
		nt.Tensor.Release()
	}
	// Output:
	// hidden float32 [2 3] [[1, 2, 3], [4, 5, 6]]
	// ids int64 [3] [7, 8, 9]
	// hidden_t_bf16 bfloat16 [3 2] [[1, 4], [2, 5], [3, 6]]
}
