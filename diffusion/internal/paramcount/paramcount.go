// Package paramcount counts the weights a model builder asks for without
// allocating them: the Source it provides hands out zero-stride views of
// one shared value, so even a real-size preset can be "built" to count its
// parameters (for the memory estimate made before allocating anything).
package paramcount

import (
	"sync/atomic"

	"github.com/omniflow-go/omniflow/operators/nn"
	"github.com/omniflow-go/omniflow/tensor"
)

// Counter is an nn.Source whose tensors are broadcast views of a single
// zero: they have the right shapes but no storage of their own. Builders
// may keep them; nothing may compute with them.
type Counter struct {
	n    atomic.Int64
	zero *tensor.Tensor
}

// New returns a Counter.
func New() *Counter { return &Counter{zero: tensor.Zeros(tensor.Float32, 1)} }

// Tensor implements nn.Source.
func (c *Counter) Tensor(name string, shape []int, _ nn.Init) (*tensor.Tensor, error) {
	n, err := tensor.NumElements(shape)
	if err != nil {
		return nil, err
	}
	c.n.Add(int64(n))
	ones := make([]int, len(shape))
	for i := range ones {
		ones[i] = 1
	}
	v, err := c.zero.Reshape(ones...)
	if err != nil {
		return nil, err
	}
	defer v.Release()
	return v.Expand(shape...)
}

// Params returns the number of values asked for so far.
func (c *Counter) Params() int64 { return c.n.Load() }

// Count builds with a fresh Counter and returns the number of values.
func Count(build func(nn.Source) error) (int64, error) {
	c := New()
	err := build(c)
	return c.Params(), err
}
