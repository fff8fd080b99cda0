package nn

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"

	"github.com/omniflow-go/omniflow/tensor"
)

// ErrWeight reports, at load time, a missing or mis-shaped weight, or a
// layer configuration no weights could make work.
var ErrWeight = errors.New("nn: bad weight")

// Init says how a random Source fills a weight.
type Init struct {
	kind initKind
	std  float64
}

type initKind uint8

const (
	initNormal initKind = iota
	initOnes
	initZeros
	initUniform
)

// Normal draws from N(0, std²).
func Normal(std float64) Init { return Init{kind: initNormal, std: std} }

// Uniform draws from U(-bound, bound).
func Uniform(bound float64) Init { return Init{kind: initUniform, std: bound} }

// Ones fills with 1 (norm scales).
var Ones = Init{kind: initOnes}

// Zeros fills with 0 (biases).
var Zeros = Init{kind: initZeros}

// Source provides a layer's weights by name. Layers ask for every weight at
// construction, so a missing or mis-shaped weight is an error then, never
// a nil field found later.
type Source interface {
	Tensor(name string, shape []int, init Init) (*tensor.Tensor, error)
}

// Random is a Source of seeded synthetic weights. Each weight's values
// depend only on the seed and the weight's name, not on the order layers
// are built in.
func Random(seed uint64) Source { return randomSource{seed} }

type randomSource struct{ seed uint64 }

func (r randomSource) Tensor(name string, shape []int, init Init) (*tensor.Tensor, error) {
	t, err := tensor.New(tensor.Float32, shape)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrWeight, name, err)
	}
	d := t.Float32s()
	switch init.kind {
	case initOnes:
		for i := range d {
			d[i] = 1
		}
	case initZeros:
	default:
		h := fnv.New64a()
		h.Write([]byte(name))
		rng := rand.New(rand.NewPCG(r.seed, h.Sum64()))
		for i := range d {
			if init.kind == initUniform {
				d[i] = float32((2*rng.Float64() - 1) * init.std)
			} else {
				d[i] = float32(rng.NormFloat64() * init.std)
			}
		}
	}
	return t, nil
}

// Weights is a set of named tensors, such as a safetensors file.
type Weights interface {
	Tensor(name string) (*tensor.Tensor, error)
}

// Checkpoint is a Source that loads weights by name, checks their shapes,
// and converts them to float32 (copied, so the checkpoint may be closed
// afterwards). The init is ignored.
func Checkpoint(w Weights) Source { return checkpoint{w} }

type checkpoint struct{ w Weights }

func (c checkpoint) Tensor(name string, shape []int, _ Init) (*tensor.Tensor, error) {
	t, err := c.w.Tensor(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrWeight, name, err)
	}
	if !tensor.SameShape(t.Shape(), shape) {
		return nil, fmt.Errorf("%w: %s has shape %v, the model needs %v", ErrWeight, name, t.Shape(), shape)
	}
	if !t.DType().IsFloat() {
		return nil, fmt.Errorf("%w: %s has dtype %v, want a float dtype", ErrWeight, name, t.DType())
	}
	out, err := t.ConvertTo(tensor.Float32, tensor.WithAllocator(tensor.DefaultAllocator))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrWeight, name, err)
	}
	for i, v := range out.Float32s() {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("%w: %s holds a non-finite value at element %d", ErrWeight, name, i)
		}
	}
	return out, nil
}

// Prefixed returns a Source that prepends prefix+"." to every name.
func Prefixed(src Source, prefix string) Source {
	if prefix == "" {
		return src
	}
	return prefixed{src, prefix}
}

type prefixed struct {
	src    Source
	prefix string
}

func (p prefixed) Tensor(name string, shape []int, init Init) (*tensor.Tensor, error) {
	return p.src.Tensor(p.prefix+"."+name, shape, init)
}

// Join joins weight name parts with dots, skipping empty ones.
func Join(parts ...string) string {
	out := ""
	for _, p := range parts {
		if p == "" {
			continue
		}
		if out != "" {
			out += "."
		}
		out += p
	}
	return out
}

// Map is Weights held in memory (tests, conversions).
type Map map[string]*tensor.Tensor

// Tensor returns the named tensor.
func (m Map) Tensor(name string) (*tensor.Tensor, error) {
	t, ok := m[name]
	if !ok {
		return nil, errors.New("not found")
	}
	return t, nil
}
