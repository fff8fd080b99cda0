package diffusion

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/omniflow-go/omniflow/operators/vision"
	"github.com/omniflow-go/omniflow/tensor"
)

// WriteImage writes an image [3, H, W] in [−1, 1] as a PNG.
func WriteImage(path string, img *tensor.Tensor) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := vision.WritePNG(f, img, vision.ImageOptions{Layout: vision.CHW, Range: vision.Signed}); err != nil {
		f.Close()
		return fmt.Errorf("diffusion: %s: %w", path, err)
	}
	return f.Close()
}

// WriteVideo writes a video [T, 3, H, W] in [−1, 1] as an animated GIF at
// gifPath (at fps frames per second, rounded to GIF's 1/100 s) and, with
// framesDir set, one PNG per frame there (<name>_0000.png, ...). It
// returns every path written.
func WriteVideo(gifPath, framesDir string, video *tensor.Tensor, fps int) ([]string, error) {
	opts := vision.ImageOptions{Layout: vision.CHW, Range: vision.Signed}
	if err := os.MkdirAll(filepath.Dir(gifPath), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(gifPath)
	if err != nil {
		return nil, err
	}
	delay := 100 / max(fps, 1)
	if err := vision.WriteGIF(f, video, vision.GIFOptions{ImageOptions: opts, Delay: max(delay, 1)}); err != nil {
		f.Close()
		return nil, fmt.Errorf("diffusion: %s: %w", gifPath, err)
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	paths := []string{gifPath}
	if framesDir == "" {
		return paths, nil
	}
	if err := os.MkdirAll(framesDir, 0o755); err != nil {
		return nil, err
	}
	prefix := strings.TrimSuffix(filepath.Base(gifPath), filepath.Ext(gifPath))
	frames, err := vision.WritePNGFrames(framesDir, prefix, video, opts)
	if err != nil {
		return nil, err
	}
	return append(paths, frames...), nil
}
