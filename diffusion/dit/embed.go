package dit

import (
	"context"
	"fmt"
	"math"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/tensor"
)

// TimestepEmbedding returns the sinusoidal embedding [len(t), dim] of
// timesteps t: row r is (cos(t_r·f_0), …, cos(t_r·f_{h−1}), sin(t_r·f_0), …)
// with h = dim/2 and f_i = 10000^(−i/h) — Wan's sinusoidal_embedding_1d and
// diffusers' Timesteps(flip_sin_to_cos=True, downscale_freq_shift=0), as
// Z-Image's timestep_embedding also is. Computed in float64, rounded once.
func TimestepEmbedding(t []float64, dim int) (*tensor.Tensor, error) {
	if dim <= 0 || dim%2 != 0 {
		return nil, fmt.Errorf("%w: timestep embedding size %d must be even", ErrConfig, dim)
	}
	out, err := tensor.New(tensor.Float32, []int{len(t), dim})
	if err != nil {
		return nil, err
	}
	d := out.Float32s()
	h := dim / 2
	for r, tv := range t {
		row := d[r*dim : (r+1)*dim]
		for i := range h {
			f := math.Pow(10000, -float64(i)/float64(h))
			s, c := math.Sincos(tv * f)
			row[i], row[h+i] = float32(c), float32(s)
		}
	}
	return out, nil
}

// Grid is a latent's size in tokens along time, height and width.
type Grid struct{ F, H, W int }

// Len is the number of tokens.
func (g Grid) Len() int { return g.F * g.H * g.W }

// GridOf returns the token grid of a latent [B, C, F, H, W] (or [B, C, H, W],
// F = 1) for the given patch, or an error when the patch does not divide it.
func GridOf(latent []int, patch [3]int) (Grid, error) {
	var f, h, w int
	switch len(latent) {
	case 5:
		f, h, w = latent[2], latent[3], latent[4]
	case 4:
		f, h, w = 1, latent[2], latent[3]
	default:
		return Grid{}, fmt.Errorf("%w: latent %v, want [B, C, F, H, W] or [B, C, H, W]", device.ErrShape, latent)
	}
	if f%patch[0] != 0 || h%patch[1] != 0 || w%patch[2] != 0 || f == 0 || h == 0 || w == 0 {
		return Grid{}, fmt.Errorf("%w: latent %v does not split into %v patches", device.ErrShape, latent, patch)
	}
	return Grid{f / patch[0], h / patch[1], w / patch[2]}, nil
}

// Patchify cuts a latent [B, C, F, H, W] (or [B, C, H, W]) into tokens
// [B, L, pt·ph·pw·C]: tokens in (f, h, w) order, each token's values in
// (pt, ph, pw, c) order — Z-Image's patchify, and the order Wan's head
// writes its output in.
func Patchify(x *tensor.Tensor, patch [3]int) (*tensor.Tensor, Grid, error) {
	g, err := GridOf(x.Shape(), patch)
	if err != nil {
		return nil, Grid{}, err
	}
	b, c := x.Dim(0), x.Dim(1)
	pt, ph, pw := patch[0], patch[1], patch[2]
	v, err := x.Reshape(b, c, g.F, pt, g.H, ph, g.W, pw)
	if err != nil {
		return nil, Grid{}, err
	}
	defer v.Release()
	p, err := v.Permute(0, 2, 4, 6, 3, 5, 7, 1)
	if err != nil {
		return nil, Grid{}, err
	}
	defer p.Release()
	out, err := p.Reshape(b, g.Len(), pt*ph*pw*c)
	return out, g, err
}

// Unpatchify is Patchify's inverse: tokens [B, L, pt·ph·pw·C] on grid g to
// [B, C, F·pt, H·ph, W·pw] (or [B, C, H·ph, W·pw] when twoD).
func Unpatchify(tokens *tensor.Tensor, g Grid, patch [3]int, c int, twoD bool) (*tensor.Tensor, error) {
	b := tokens.Dim(0)
	pt, ph, pw := patch[0], patch[1], patch[2]
	if tokens.Rank() != 3 || tokens.Dim(1) != g.Len() || tokens.Dim(2) != pt*ph*pw*c {
		return nil, fmt.Errorf("%w: tokens %v for grid %v, patch %v, %d channels", device.ErrShape, tokens.Shape(), g, patch, c)
	}
	v, err := tokens.Reshape(b, g.F, g.H, g.W, pt, ph, pw, c)
	if err != nil {
		return nil, err
	}
	defer v.Release()
	p, err := v.Permute(0, 7, 1, 4, 2, 5, 3, 6)
	if err != nil {
		return nil, err
	}
	defer p.Release()
	if twoD {
		if g.F*pt != 1 {
			return nil, fmt.Errorf("%w: a 2D latent has one frame, grid %v", device.ErrShape, g)
		}
		return p.Reshape(b, c, g.H*ph, g.W*pw)
	}
	return p.Reshape(b, c, g.F*pt, g.H*ph, g.W*pw)
}

// RopeTable returns a rotary table whose row r holds the angles of token r
// at positions pos[3r:3r+3] on three axes: axis a rotates pairs[a] pairs
// with frequencies θ^(−i/pairs[a]) (= θ^(−2i/d_a) for an axis of d_a dims,
// as Wan's rope_params and Z-Image's RopeEmbedder compute them), the axes'
// pairs side by side. Use it with RoPE position offset 0 and one row per
// token, pairs interleaved (device.RopeInterleaved).
func RopeTable(pos []int32, pairs [3]int, theta float64) device.RopeTable {
	var freqs []float64
	var axis []int
	for a, n := range pairs {
		for i := range n {
			freqs = append(freqs, math.Pow(theta, -float64(i)/float64(n)))
			axis = append(axis, a)
		}
	}
	h := len(freqs)
	rows := len(pos) / 3
	tab := device.RopeTable{Cos: make([]float32, rows*h), Sin: make([]float32, rows*h), Dim: 2 * h}
	for r := range rows {
		for i, f := range freqs {
			s, c := math.Sincos(float64(pos[3*r+axis[i]]) * f)
			tab.Cos[r*h+i], tab.Sin[r*h+i] = float32(c), float32(s)
		}
	}
	return tab
}

// GridPositions returns the (f, h, w) positions of a grid's tokens in
// (f, h, w) order, offset by off.
func GridPositions(g Grid, off [3]int32) []int32 {
	pos := make([]int32, 0, 3*g.Len())
	for f := range g.F {
		for h := range g.H {
			for w := range g.W {
				pos = append(pos, off[0]+int32(f), off[1]+int32(h), off[2]+int32(w))
			}
		}
	}
	return pos
}

// Modulate returns x·(1+scale) + shift (adaLN), broadcasting scale and
// shift ([B, 1, D] per sample or [B, L, D] per token); shift may be nil.
func Modulate(ctx context.Context, x, shift, scale *tensor.Tensor) (*tensor.Tensor, error) {
	s1, err := device.AddScalar(ctx, scale, 1)
	if err != nil {
		return nil, err
	}
	y, err := device.Mul(ctx, x, s1)
	s1.Release()
	if err != nil || shift == nil {
		return y, err
	}
	out, err := device.Add(ctx, y, shift)
	y.Release()
	return out, err
}

// GatedAdd returns x + gate·y.
func GatedAdd(ctx context.Context, x, y, gate *tensor.Tensor) (*tensor.Tensor, error) {
	gy, err := device.Mul(ctx, y, gate)
	if err != nil {
		return nil, err
	}
	out, err := device.Add(ctx, x, gy)
	gy.Release()
	return out, err
}

// gatherRows returns rows idx of src [N, D] as [len(idx)/per, per, D]…
// reshaped by the caller: out row i is src row idx[i].
func gatherRows(src *tensor.Tensor, idx []int, shape ...int) (*tensor.Tensor, error) {
	c, err := src.Contiguous()
	if err != nil {
		return nil, err
	}
	defer c.Release()
	d := c.Dim(-1)
	out, err := tensor.New(tensor.Float32, shape)
	if err != nil {
		return nil, err
	}
	if out.NumElements() != len(idx)*d {
		out.Release()
		return nil, fmt.Errorf("%w: gathering %d rows of %d into %v", device.ErrShape, len(idx), d, shape)
	}
	s, o := c.Float32s(), out.Float32s()
	for i, r := range idx {
		copy(o[i*d:(i+1)*d], s[r*d:(r+1)*d])
	}
	return out, nil
}
