package vision

import (
	"image"
	"image/color"
	"slices"
)

// maxPaletteSamples bounds the pixels MedianCutPalette looks at; larger
// inputs are sampled at a fixed stride.
const maxPaletteSamples = 1 << 18

// MedianCutPalette computes an n-colour palette (1 ≤ n ≤ 256) for imgs
// by median cut (Heckbert): start with one box holding every sampled
// pixel's colour; repeatedly take the box with the largest
// pixel count × widest channel range and split it at the median of that
// channel, keeping equal values on one side; each final box contributes
// the mean of its pixels. Images with at most n distinct colours get
// exactly their colours. Alpha is ignored (frames are opaque).
func MedianCutPalette(imgs []*image.NRGBA, n int) color.Palette {
	n = min(max(n, 1), 256)
	total := 0
	for _, img := range imgs {
		total += img.Rect.Dx() * img.Rect.Dy()
	}
	stride := max(1, (total+maxPaletteSamples-1)/maxPaletteSamples)
	px := make([][3]uint8, 0, min(total, maxPaletteSamples+len(imgs)))
	k := 0
	for _, img := range imgs {
		w, h := img.Rect.Dx(), img.Rect.Dy()
		for y := range h {
			row := img.Pix[y*img.Stride : y*img.Stride+4*w]
			for x := range w {
				if k%stride == 0 {
					px = append(px, [3]uint8{row[4*x], row[4*x+1], row[4*x+2]})
				}
				k++
			}
		}
	}
	if len(px) == 0 {
		return color.Palette{color.RGBA{A: 255}}
	}
	type box struct {
		px    [][3]uint8
		axis  int // widest channel
		width int // its range
	}
	measure := func(p [][3]uint8) box {
		lo, hi := [3]uint8{255, 255, 255}, [3]uint8{}
		for _, c := range p {
			for i := range 3 {
				lo[i], hi[i] = min(lo[i], c[i]), max(hi[i], c[i])
			}
		}
		b := box{px: p}
		for i := range 3 {
			if w := int(hi[i]) - int(lo[i]); w > b.width {
				b.axis, b.width = i, w
			}
		}
		return b
	}
	boxes := []box{measure(px)}
	for len(boxes) < n {
		best, score := -1, 0
		for i, b := range boxes {
			if s := len(b.px) * b.width; b.width > 0 && s > score {
				best, score = i, s
			}
		}
		if best < 0 {
			break // every box is one colour
		}
		b := boxes[best]
		ax := b.axis
		slices.SortFunc(b.px, func(p, q [3]uint8) int { return int(p[ax]) - int(q[ax]) })
		// Cut at the median, moved to a value boundary (one exists since
		// the range is non-zero): up if possible, else down.
		m := len(b.px) / 2
		cut := m
		for cut < len(b.px) && b.px[cut][ax] == b.px[cut-1][ax] {
			cut++
		}
		if cut == len(b.px) {
			for cut = m; b.px[cut][ax] == b.px[cut-1][ax]; cut-- {
			}
		}
		boxes[best] = measure(b.px[:cut])
		boxes = append(boxes, measure(b.px[cut:]))
	}
	pal := make(color.Palette, 0, len(boxes))
	for _, b := range boxes {
		var sum [3]int
		for _, c := range b.px {
			for i := range 3 {
				sum[i] += int(c[i])
			}
		}
		l := len(b.px)
		pal = append(pal, color.RGBA{uint8((sum[0] + l/2) / l), uint8((sum[1] + l/2) / l), uint8((sum[2] + l/2) / l), 255})
	}
	return pal
}
