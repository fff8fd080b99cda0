package vision_test

import (
	"fmt"
	"image"
	"image/color"

	"github.com/omniflow-go/omniflow/operators/vision"
)

func ExamplePreprocess() {
	img := image.NewNRGBA(image.Rect(0, 0, 640, 480))
	for i := range img.Pix {
		img.Pix[i] = 200
	}
	img.Set(0, 0, color.Black)
	p, err := vision.Preprocess(vision.DefaultProcessorConfig(), img)
	if err != nil {
		panic(err)
	}
	fmt.Println("grid (t, h, w):", p.GridT, p.GridH, p.GridW)
	fmt.Println("patches:", p.Data.Shape())
	fmt.Println("<|IMAGE|> tokens:", p.NumTokens())
	// Output:
	// grid (t, h, w): 1 34 46
	// patches: [1564 1176]
	// <|IMAGE|> tokens: 391
}
