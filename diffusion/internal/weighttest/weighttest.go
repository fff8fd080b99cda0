// Package weighttest helps the diffusion packages' tests check weight
// loading: a Source that records every weight a builder asks for, so a test
// can write exactly those names to a safetensors file and load them back.
package weighttest

import (
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/omniflow-go/omniflow/operators/nn"
	"github.com/omniflow-go/omniflow/tensor"
)

// Recorder is an nn.Source that draws seeded random weights and remembers
// them by name.
type Recorder struct {
	src nn.Source
	mu  sync.Mutex
	got map[string]*tensor.Tensor
}

// NewRecorder records the weights of nn.Random(seed).
func NewRecorder(seed uint64) *Recorder {
	return &Recorder{src: nn.Random(seed), got: map[string]*tensor.Tensor{}}
}

// Tensor implements nn.Source.
func (r *Recorder) Tensor(name string, shape []int, init nn.Init) (*tensor.Tensor, error) {
	t, err := r.src.Tensor(name, shape, init)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.got[name]; dup {
		return nil, fmt.Errorf("weight %q asked for twice", name)
	}
	r.got[name] = t
	return t, nil
}

// Weights returns the recorded weights by name.
func (r *Recorder) Weights() map[string]*tensor.Tensor {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.got)
}

// Names returns the recorded names, sorted.
func (r *Recorder) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.got))
}

// NumParams returns the number of recorded weight values.
func (r *Recorder) NumParams() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	for _, t := range r.got {
		n += int64(t.NumElements())
	}
	return n
}

// Without returns the weights minus one name.
func Without(w map[string]*tensor.Tensor, name string) map[string]*tensor.Tensor {
	out := maps.Clone(w)
	delete(out, name)
	return out
}

// Reshaped returns the weights with one replaced by a zero tensor of
// another shape.
func Reshaped(w map[string]*tensor.Tensor, name string, shape ...int) map[string]*tensor.Tensor {
	out := maps.Clone(w)
	out[name] = tensor.Zeros(tensor.Float32, shape...)
	return out
}
