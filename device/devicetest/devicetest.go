// Package devicetest runs one test body on every available device (the
// GoMLX habit): the CPU; Sim, a device whose memory is not host memory and
// which implements no kernel, so every kernel takes the dispatcher's CPU
// fallback and copies back; and a Sim that implements every kernel, so
// every kernel runs on the backend path. A device that is absent here (CUDA
// without its build tag or a GPU) is skipped, never failed.
package devicetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/tensor"
)

// Each runs fn once per available device, as a subtest named after it.
func Each(t *testing.T, fn func(t *testing.T, dev device.Device)) {
	t.Helper()
	for _, d := range Devices() {
		t.Run(d.Name(), func(t *testing.T) { fn(t, d) })
	}
}

// Devices returns a fresh instance of every available device: the CPU, a
// Sim without kernels ("sim") and a Sim with all of them ("sim-kernels").
func Devices() []device.Device {
	return []device.Device{device.NewCPU(), NewSim(), NewSim(WithName("sim-kernels"), WithKernels(AllKernels...))}
}

// Put copies a host tensor onto dev (it returns t itself, retained, for the CPU).
func Put(t testing.TB, dev device.Device, x *tensor.Tensor) *tensor.Tensor {
	t.Helper()
	if _, ok := dev.(*device.CPU); ok {
		x.Retain()
		return x
	}
	d, err := dev.Alloc(context.Background(), x.DType(), x.Shape())
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Copy(context.Background(), d, x); err != nil {
		t.Fatal(err)
	}
	return d
}

// Get copies a tensor on any device to a contiguous host tensor.
func Get(t testing.TB, dev device.Device, x *tensor.Tensor) *tensor.Tensor {
	t.Helper()
	if x.OnHost() {
		c, err := x.Contiguous()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	h, err := tensor.New(x.DType(), x.Shape())
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Copy(context.Background(), h, x); err != nil {
		t.Fatal(err)
	}
	return h
}

// AllKernels names every kernel a Sim can implement (the kernels' span
// names): pass it to WithKernels for a Sim that runs everything itself.
var AllKernels = []string{
	"matmul", "linear",
	"exp", "tanh", "sigmoid", "neg", "sqrt", "rsqrt", "scale", "add_scalar", "gelu", "gelu_tanh", "silu",
	"add", "sub", "mul", "div", "swiglu",
	"sum", "mean", "max", "argmax",
	"softmax", "log_softmax",
	"layer_norm", "rms_norm", "rms_norm_channels", "group_norm",
	"rope", "attention",
	"conv1d", "conv2d", "conv3d", "conv_transpose1d",
	"embedding", "sample",
}

// Sim is a simulated accelerator: its tensors live in buffers the host
// cannot address as tensors. It implements the backend interface of every
// kernel in package device, but runs only the kernels named by WithKernels
// (on the host, through the CPU kernels, reading and writing its own
// memory, as a real backend would run them on its device); for the others
// it answers device.ErrNotImplemented, so the dispatcher falls back to the
// CPU. Tries and Runs count both, per kernel.
type Sim struct {
	// MatMulCalls counts the dispatcher's MatMul requests.
	MatMulCalls atomic.Int64

	name    string
	kernels map[string]bool
	live    atomic.Int64

	mu    sync.Mutex
	tries map[string]int64
	runs  map[string]int64
}

// SimOption configures a Sim.
type SimOption func(*Sim)

// WithName sets the device's name (default "sim").
func WithName(name string) SimOption { return func(s *Sim) { s.name = name } }

// WithKernels makes the Sim run the named kernels itself (span names:
// "softmax", "rms_norm", "attention", "conv2d", "add", ...; see AllKernels).
func WithKernels(names ...string) SimOption {
	return func(s *Sim) {
		for _, n := range names {
			s.kernels[n] = true
		}
	}
}

// NewSim returns a simulated device.
func NewSim(opts ...SimOption) *Sim {
	s := &Sim{name: "sim", kernels: map[string]bool{}, tries: map[string]int64{}, runs: map[string]int64{}}
	for _, o := range opts {
		if o != nil {
			o(s)
		}
	}
	return s
}

func (s *Sim) Name() string { return s.name }

func (s *Sim) String() string { return s.name }

// InUse returns the bytes held by live buffers.
func (s *Sim) InUse() int64 { return s.live.Load() }

// Tries returns how often the dispatcher asked the Sim to run kernel.
func (s *Sim) Tries(kernel string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tries[kernel]
}

// Runs returns how often the Sim ran kernel itself.
func (s *Sim) Runs(kernel string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs[kernel]
}

type simBuffer struct {
	dev      *Sim
	data     []byte
	released atomic.Bool
}

func (b *simBuffer) Owner() any { return b.dev }
func (b *simBuffer) Len() int   { return len(b.data) }
func (b *simBuffer) Release() {
	if b.released.CompareAndSwap(false, true) {
		b.dev.live.Add(-int64(len(b.data)))
	}
}

func (s *Sim) Alloc(_ context.Context, dt tensor.DType, shape []int) (*tensor.Tensor, error) {
	if !dt.Valid() {
		return nil, fmt.Errorf("%s: alloc: %w: %v", s.name, tensor.ErrDType, dt)
	}
	n, err := tensor.NumElements(shape)
	if err != nil {
		return nil, fmt.Errorf("%s: alloc: %w", s.name, err)
	}
	buf := &simBuffer{dev: s, data: make([]byte, n*dt.Size())}
	s.live.Add(int64(len(buf.data)))
	return tensor.FromDevice(dt, shape, buf)
}

// Copy copies between host and this device; either side may be a strided
// view.
func (s *Sim) Copy(_ context.Context, dst, src *tensor.Tensor) error {
	if dst.DType() != src.DType() || !tensor.SameShape(dst.Shape(), src.Shape()) {
		return fmt.Errorf("%s: copy %v into %v", s.name, src, dst)
	}
	if db, sb := s.contiguousBytes(dst), s.contiguousBytes(src); db != nil && sb != nil {
		copy(db, sb)
		return nil
	}
	sv, err := s.hostView(src)
	if err != nil {
		return err
	}
	defer sv.Release()
	dv, err := s.hostView(dst)
	if err != nil {
		return err
	}
	defer dv.Release()
	return dv.CopyFrom(sv)
}

// contiguousBytes returns the bytes of a contiguous tensor on the host or
// on this Sim, or nil (strided, or another device's).
func (s *Sim) contiguousBytes(t *tensor.Tensor) []byte {
	if !t.IsContiguous() || t.NumElements() == 0 {
		return nil
	}
	if t.OnHost() {
		return t.Bytes()
	}
	b, ok := t.DeviceBuffer().(*simBuffer)
	if !ok || b.dev != s {
		return nil
	}
	return b.data[t.Offset()*t.DType().Size():][:t.SizeBytes()]
}

// hostView returns t itself (retained) for a host tensor, or a host tensor
// over the bytes of this Sim's buffer with t's strides and offset.
func (s *Sim) hostView(t *tensor.Tensor) (*tensor.Tensor, error) {
	if t.OnHost() {
		t.Retain()
		return t, nil
	}
	b, ok := t.DeviceBuffer().(*simBuffer)
	if !ok || b.dev != s {
		return nil, fmt.Errorf("%s: %v is on another device", s.name, t)
	}
	buf := memory.NewBufferBytes(b.data)
	defer buf.Release()
	return tensor.FromBuffer(t.DType(), t.Shape(), t.Strides(), t.Offset(), buf)
}

func (s *Sim) Sync(context.Context) error { return nil }
func (s *Sim) Close() error               { return nil }

// run is the body of every kernel method: count the try, answer
// ErrNotImplemented for a kernel the Sim lacks, else copy the operands to
// the host, run f there and put the result in the Sim's memory.
func (s *Sim) run(ctx context.Context, kernel string, f func(hctx context.Context, h []*tensor.Tensor) (*tensor.Tensor, error), in ...*tensor.Tensor) (*tensor.Tensor, error) {
	hctx, h, release, err := s.enter(ctx, kernel, in...)
	if err != nil {
		return nil, err
	}
	defer release()
	out, err := f(hctx, h)
	if err != nil {
		return nil, err
	}
	defer out.Release()
	d, err := s.Alloc(ctx, out.DType(), out.Shape())
	if err != nil {
		return nil, err
	}
	if err := s.Copy(ctx, d, out); err != nil {
		d.Release()
		return nil, err
	}
	s.count(s.runs, kernel)
	return d, nil
}

// enter counts a try of kernel and, when the Sim has it, returns a context
// for its host arithmetic and host copies of the operands (nil stays nil).
// The context keeps the caller's CPU (threads, allocator) and nothing else:
// the Sim's own work records no spans, as a device's kernels would not.
func (s *Sim) enter(ctx context.Context, kernel string, in ...*tensor.Tensor) (context.Context, []*tensor.Tensor, func(), error) {
	s.count(s.tries, kernel)
	if !s.kernels[kernel] {
		return nil, nil, nil, device.ErrNotImplemented
	}
	cpu := device.CPUFrom(ctx)
	h := make([]*tensor.Tensor, len(in))
	release := func() {
		for _, t := range h {
			if t != nil {
				t.Release()
			}
		}
	}
	for i, t := range in {
		if t == nil {
			continue
		}
		c, err := tensor.New(t.DType(), t.Shape(), tensor.WithAllocator(cpu.Allocator()))
		if err != nil {
			release()
			return nil, nil, nil, err
		}
		h[i] = c
		if t.OnHost() {
			err = c.CopyFrom(t)
		} else {
			err = s.Copy(ctx, c, t)
		}
		if err != nil {
			release()
			return nil, nil, nil, err
		}
	}
	return device.WithDevice(context.Background(), cpu), h, release, nil
}

func (s *Sim) count(m map[string]int64, kernel string) {
	s.mu.Lock()
	m[kernel]++
	s.mu.Unlock()
}

// MatMul implements device.MatMuler.
func (s *Sim) MatMul(ctx context.Context, a, b *tensor.Tensor, transA, transB bool) (*tensor.Tensor, error) {
	s.MatMulCalls.Add(1)
	return s.run(ctx, "matmul", func(c context.Context, h []*tensor.Tensor) (*tensor.Tensor, error) {
		return device.MatMul(c, h[0], h[1], transA, transB)
	}, a, b)
}

// Linear implements device.Linearer.
func (s *Sim) Linear(ctx context.Context, x, w, bias *tensor.Tensor) (*tensor.Tensor, error) {
	return s.run(ctx, "linear", func(c context.Context, h []*tensor.Tensor) (*tensor.Tensor, error) {
		return device.Linear(c, h[0], h[1], h[2])
	}, x, w, bias)
}

// Unary implements device.Unaryer.
func (s *Sim) Unary(ctx context.Context, op device.UnaryOp, x *tensor.Tensor, v float32) (*tensor.Tensor, error) {
	return s.run(ctx, string(op), func(c context.Context, h []*tensor.Tensor) (*tensor.Tensor, error) {
		return device.Unary(c, op, h[0], v)
	}, x)
}

// Binary implements device.Binaryer.
func (s *Sim) Binary(ctx context.Context, op device.BinaryOp, a, b *tensor.Tensor) (*tensor.Tensor, error) {
	return s.run(ctx, string(op), func(c context.Context, h []*tensor.Tensor) (*tensor.Tensor, error) {
		return device.Binary(c, op, h[0], h[1])
	}, a, b)
}

// Reduce implements device.Reducer.
func (s *Sim) Reduce(ctx context.Context, op device.ReduceOp, x *tensor.Tensor) (*tensor.Tensor, error) {
	return s.run(ctx, string(op), func(c context.Context, h []*tensor.Tensor) (*tensor.Tensor, error) {
		return device.Reduce(c, op, h[0])
	}, x)
}

// Softmax implements device.Softmaxer.
func (s *Sim) Softmax(ctx context.Context, x *tensor.Tensor, log bool) (*tensor.Tensor, error) {
	name, f := "softmax", device.Softmax
	if log {
		name, f = "log_softmax", device.LogSoftmax
	}
	return s.run(ctx, name, func(c context.Context, h []*tensor.Tensor) (*tensor.Tensor, error) { return f(c, h[0]) }, x)
}

// LayerNorm implements device.LayerNormer.
func (s *Sim) LayerNorm(ctx context.Context, x, weight, bias *tensor.Tensor, eps float32) (*tensor.Tensor, error) {
	return s.run(ctx, "layer_norm", func(c context.Context, h []*tensor.Tensor) (*tensor.Tensor, error) {
		return device.LayerNorm(c, h[0], h[1], h[2], eps)
	}, x, weight, bias)
}

// RMSNorm implements device.RMSNormer.
func (s *Sim) RMSNorm(ctx context.Context, x, weight *tensor.Tensor, eps float32) (*tensor.Tensor, error) {
	return s.run(ctx, "rms_norm", func(c context.Context, h []*tensor.Tensor) (*tensor.Tensor, error) {
		return device.RMSNorm(c, h[0], h[1], eps)
	}, x, weight)
}

// RMSNormChannels implements device.ChannelRMSNormer.
func (s *Sim) RMSNormChannels(ctx context.Context, x, weight *tensor.Tensor, eps float32) (*tensor.Tensor, error) {
	return s.run(ctx, "rms_norm_channels", func(c context.Context, h []*tensor.Tensor) (*tensor.Tensor, error) {
		return device.RMSNormChannels(c, h[0], h[1], eps)
	}, x, weight)
}

// GroupNorm implements device.GroupNormer.
func (s *Sim) GroupNorm(ctx context.Context, x *tensor.Tensor, groups int, weight, bias *tensor.Tensor, eps float32) (*tensor.Tensor, error) {
	return s.run(ctx, "group_norm", func(c context.Context, h []*tensor.Tensor) (*tensor.Tensor, error) {
		return device.GroupNorm(c, h[0], groups, h[1], h[2], eps)
	}, x, weight, bias)
}

// RoPE implements device.Roper.
func (s *Sim) RoPE(ctx context.Context, x *tensor.Tensor, tab device.RopeTable, mode device.RopeMode, pos0 int, positions []int32) (*tensor.Tensor, error) {
	return s.run(ctx, "rope", func(c context.Context, h []*tensor.Tensor) (*tensor.Tensor, error) {
		return device.RoPE(c, h[0], tab, mode, pos0, positions)
	}, x)
}

// Attention implements device.Attender.
func (s *Sim) Attention(ctx context.Context, q, k, v *tensor.Tensor, opt device.AttentionOptions) (*tensor.Tensor, error) {
	return s.run(ctx, "attention", func(c context.Context, h []*tensor.Tensor) (*tensor.Tensor, error) {
		o := opt
		o.Mask = h[3]
		return device.Attention(c, h[0], h[1], h[2], o)
	}, q, k, v, opt.Mask)
}

// Conv implements device.Convolver.
func (s *Sim) Conv(ctx context.Context, x, w, bias *tensor.Tensor, opt device.ConvOptions) (*tensor.Tensor, error) {
	name := fmt.Sprintf("conv%dd", x.Rank()-2)
	return s.run(ctx, name, func(c context.Context, h []*tensor.Tensor) (*tensor.Tensor, error) {
		return device.Conv(c, h[0], h[1], h[2], opt)
	}, x, w, bias)
}

// ConvTranspose1d implements device.ConvTransposer.
func (s *Sim) ConvTranspose1d(ctx context.Context, x, w, bias *tensor.Tensor, opt device.ConvTranspose1dOptions) (*tensor.Tensor, error) {
	return s.run(ctx, "conv_transpose1d", func(c context.Context, h []*tensor.Tensor) (*tensor.Tensor, error) {
		return device.ConvTranspose1d(c, h[0], h[1], h[2], opt)
	}, x, w, bias)
}

// Embedding implements device.Embedder.
func (s *Sim) Embedding(ctx context.Context, ids, table *tensor.Tensor) (*tensor.Tensor, error) {
	return s.run(ctx, "embedding", func(c context.Context, h []*tensor.Tensor) (*tensor.Tensor, error) {
		return device.Embedding(c, h[0], h[1])
	}, ids, table)
}

// Sample implements device.TokenSampler.
func (s *Sim) Sample(ctx context.Context, logits *tensor.Tensor, prev []int32, p device.SampleParams, rng *rand.Rand) (int32, error) {
	hctx, h, release, err := s.enter(ctx, "sample", logits)
	if err != nil {
		return 0, err
	}
	defer release()
	tok, err := device.Sample(hctx, nil, h[0], prev, p, rng)
	if err != nil {
		return 0, err
	}
	s.count(s.runs, "sample")
	return tok, nil
}
