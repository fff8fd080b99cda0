package vision

import (
	"bytes"
	"image"
	"testing"
)

func FuzzLoad(f *testing.F) {
	f.Add(encodePNG(f, image.NewNRGBA(image.Rect(0, 0, 3, 2))))
	f.Add(encodePNG(f, image.NewGray(image.Rect(0, 0, 5, 1))))
	f.Add(pngHeaderOnly(100000, 100000))
	f.Add([]byte("\xff\xd8\xff\xdb"))
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := Load(bytes.NewReader(data), WithMaxPixels(1<<16))
		if err != nil {
			return
		}
		b := img.Bounds()
		if b.Dx()*b.Dy() > 1<<16 {
			t.Fatalf("decoded %v past the limit", b)
		}
		x, err := ToTensor(img)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range x.Float32s() {
			if !(v >= 0 && v <= 1) {
				t.Fatalf("value %v outside [0, 1]", v)
			}
		}
	})
}
