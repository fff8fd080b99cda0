package offline

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/omniflow-go/omniflow/diffusion"
)

// IsTerminal reports whether w is a character device (a terminal), the
// only place a progress bar belongs.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// ProgressBar draws denoise progress on one line, redrawn in place:
//
//	denoise [##########..........]  2/4  t=922.0  high_noise  cfg    0.05s
//
// The guidance column is "cfg" for a guided step, "-" for an unguided one
// and "skip" for a zero-length step that ran no model (Z-Image's last).
type ProgressBar struct {
	W     io.Writer
	Width int // bar cells (default 24)
}

// Update redraws the bar for p, ending the line after the last step.
func (b *ProgressBar) Update(p diffusion.Progress) {
	w := b.Width
	if w <= 0 {
		w = 24
	}
	done := 0
	if p.Steps > 0 {
		done = min(w, p.Step*w/p.Steps)
	}
	g := "-"
	switch {
	case p.Skipped:
		g = "skip"
	case p.Guided:
		g = "cfg"
	}
	fmt.Fprintf(b.W, "\rdenoise [%s%s] %*d/%d  t=%6.1f  %-10s %-4s %7.2fs",
		strings.Repeat("#", done), strings.Repeat(".", w-done), len(fmt.Sprint(p.Steps)), p.Step, p.Steps,
		p.Timestep, p.Expert, g, p.Elapsed.Seconds())
	if p.Step >= p.Steps {
		fmt.Fprintln(b.W)
	}
}
