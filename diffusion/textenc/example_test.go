package textenc_test

import (
	"context"
	"fmt"

	"github.com/omniflow-go/omniflow/diffusion/textenc"
	"github.com/omniflow-go/omniflow/operators/nn"
)

func Example() {
	enc, err := textenc.New(nn.Random(1), textenc.Tiny())
	if err != nil {
		panic(err)
	}
	out, err := enc.Encode(context.Background(), []string{"a fox in the snow", ""})
	if err != nil {
		panic(err)
	}
	defer out.Release()
	fmt.Println(out.States.Shape(), out.Lens) // each prompt's bytes and its </s>
	// Output: [2 32 64] [18 1]
}
