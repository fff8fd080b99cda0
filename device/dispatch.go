package device

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/tensor"
)

// cost is what a kernel span reports: floating-point operations and bytes
// moved (inputs read plus outputs written), so the summary can show
// achieved GFLOP/s and GB/s.
type cost struct {
	flops, bytes int64
}

// startKernel records a kernel span with the op name, device, dtype, cost
// and, when the profile records shapes, the first two input shapes. This is
// the one place kernel spans come from.
func startKernel(ctx context.Context, name string, dev Device, dt tensor.DType, c cost, in ...*tensor.Tensor) (context.Context, profiler.Span) {
	if !profiler.Recording(ctx) {
		return profiler.StartKind(ctx, profiler.KindKernel, name) // runtime/trace only
	}
	attrs := [profiler.MaxAttrs]profiler.Attr{
		profiler.String("device", dev.Name()),
		profiler.String("dtype", dt.String()),
		profiler.Int64("flops", c.flops),
		profiler.Int64("bytes", c.bytes),
	}
	n := 4
	if profiler.RecordShapes(ctx) {
		for i, t := range in {
			if i == 2 || t == nil {
				break
			}
			attrs[n] = profiler.Ints(shapeKeys[i], t.Shape())
			n++
		}
	}
	return profiler.StartKind(ctx, profiler.KindKernel, name, attrs[:n]...)
}

var shapeKeys = [...]string{"shape.in0", "shape.in1"}

// memSample emits the device's memory counter when it moved by at least
// 1/64 of its last sample or 1 MiB.
func memSample(ctx context.Context, dev Device) {
	ms, ok := dev.(MemoryStats)
	if !ok || !profiler.Recording(ctx) {
		return
	}
	v := ms.InUse()
	last := lastSample(dev)
	prev := last.Load()
	d := v - prev
	if d < 0 {
		d = -d
	}
	if d >= 1<<20 || d >= prev/64 {
		if last.CompareAndSwap(prev, v) {
			profiler.Counter(ctx, "memory."+dev.Name(), float64(v))
		}
	}
}

var samples sync.Map // Device -> *atomic.Int64

func lastSample(dev Device) *atomic.Int64 {
	if v, ok := samples.Load(dev); ok {
		return v.(*atomic.Int64)
	}
	v, _ := samples.LoadOrStore(dev, new(atomic.Int64))
	return v.(*atomic.Int64)
}

// float32s returns t as a contiguous float32 host tensor, converting other
// float dtypes (and copying device or strided tensors); release frees what
// was made here.
func float32s(ctx context.Context, t *tensor.Tensor) (*tensor.Tensor, func(), error) {
	if t == nil {
		return nil, func() {}, nil
	}
	if t.OnHost() && t.DType() == tensor.Float32 && t.IsContiguous() {
		return t, func() {}, nil
	}
	h := t
	if !t.OnHost() {
		var err error
		h, err = toHost(ctx, t)
		if err != nil {
			return nil, nil, err
		}
	}
	var out *tensor.Tensor
	var err error
	switch h.DType() {
	case tensor.Float32:
		out, err = h.Contiguous()
	case tensor.Float16, tensor.BFloat16:
		out, err = h.ConvertTo(tensor.Float32)
	default:
		err = fmt.Errorf("%w: want a float tensor, got %v", ErrDType, t.DType())
	}
	if h != t {
		h.Release()
	}
	if err != nil {
		return nil, nil, err
	}
	return out, out.Release, nil
}

// hostContiguous returns t as a contiguous host tensor of its own dtype.
func hostContiguous(ctx context.Context, t *tensor.Tensor) (*tensor.Tensor, func(), error) {
	if t.OnHost() {
		c, err := t.Contiguous()
		if err != nil {
			return nil, nil, err
		}
		return c, c.Release, nil
	}
	h, err := toHost(ctx, t)
	if err != nil {
		return nil, nil, err
	}
	return h, h.Release, nil
}

// toHost copies a device tensor to a new host tensor.
func toHost(ctx context.Context, t *tensor.Tensor) (*tensor.Tensor, error) {
	dev := Of(ctx, t)
	h, err := tensor.New(t.DType(), t.Shape())
	if err != nil {
		return nil, err
	}
	if err := dev.Copy(ctx, h, t); err != nil {
		h.Release()
		return nil, fmt.Errorf("device %s: copy to host: %w", dev.Name(), err)
	}
	return h, nil
}

// kernelCall holds what every tensor kernel does around its arithmetic:
// pick the device, let a backend try, fall back to the CPU, and record the
// span and memory counter.
type kernelCall struct {
	name     string
	ctx      context.Context
	dev      Device
	cpu      *CPU
	in       []*tensor.Tensor
	span     profiler.Span
	releases []func()
}

// begin starts a kernel call on the device of the first operand.
func begin(ctx context.Context, name string, c cost, in ...*tensor.Tensor) *kernelCall {
	k := &kernelCall{name: name, in: in, cpu: CPUFrom(ctx)}
	k.dev = k.cpu
	dt := tensor.Float32
	for _, t := range in {
		if t != nil {
			k.dev = Of(ctx, t)
			dt = t.DType()
			break
		}
	}
	k.ctx, k.span = startKernel(ctx, name, k.dev, dt, c, in...)
	return k
}

// end frees the operand copies, ends the span and samples memory.
func (k *kernelCall) end() {
	for _, r := range k.releases {
		r()
	}
	k.span.End()
	memSample(k.ctx, k.cpu)
}

// data returns the operands as float32 host data (nil for a nil operand),
// converting or copying where needed; the copies are freed by end.
func (k *kernelCall) data(ts ...*tensor.Tensor) ([][]float32, error) {
	out := make([][]float32, len(ts))
	for i, t := range ts {
		if t == nil {
			continue
		}
		f, r, err := float32s(k.ctx, t)
		if err != nil {
			return nil, k.wrap(err)
		}
		k.releases = append(k.releases, r)
		out[i] = f.Float32s()
	}
	return out, nil
}

// output allocates the float32 result and runs the CPU kernel into it.
func (k *kernelCall) output(shape []int, run func(dst []float32) error) (*tensor.Tensor, error) {
	out, err := k.alloc(shape...)
	if err != nil {
		return nil, k.wrap(err)
	}
	if err := run(out.Float32s()); err != nil {
		out.Release()
		return nil, k.wrap(err)
	}
	return k.finish(out, nil)
}

// checkLen reports a parameter tensor that does not hold n elements.
func checkLen(name string, t *tensor.Tensor, n int, what string) error {
	if t != nil && t.NumElements() != n {
		return shapeErr("%s: %s has %d elements, want %d", name, what, t.NumElements(), n)
	}
	return nil
}

// backend tries the device's own kernel: try returns ErrNotImplemented when
// the device does not have it (ok false), or its result.
func backend[K any](k *kernelCall, try func(K) (*tensor.Tensor, error)) (*tensor.Tensor, bool, error) {
	if _, isCPU := k.dev.(*CPU); isCPU {
		return nil, false, nil
	}
	impl, ok := k.dev.(K)
	if !ok {
		return nil, false, nil
	}
	out, err := try(impl)
	if errors.Is(err, ErrNotImplemented) {
		return nil, false, nil
	}
	return out, true, err
}

// alloc makes a float32 output on the CPU.
func (k *kernelCall) alloc(shape ...int) (*tensor.Tensor, error) {
	return k.cpu.Alloc(k.ctx, tensor.Float32, shape)
}

// finish returns the CPU result of a kernel on the operands' device: as is
// for the CPU, else copied back to the device that lacked the kernel, so a
// pipeline stays on its device.
func (k *kernelCall) finish(out *tensor.Tensor, err error) (*tensor.Tensor, error) {
	if err != nil {
		return nil, k.wrap(err)
	}
	if _, isCPU := k.dev.(*CPU); isCPU || out == nil {
		return out, nil
	}
	d, err := k.dev.Alloc(k.ctx, out.DType(), out.Shape())
	if err != nil {
		out.Release()
		return nil, k.wrap(err)
	}
	err = k.dev.Copy(k.ctx, d, out)
	out.Release()
	if err != nil {
		d.Release()
		return nil, k.wrap(err)
	}
	return d, nil
}

// wrap prefixes an error with the kernel's name.
func (k *kernelCall) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", k.name, err)
}

func shapeErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrShape}, args...)...)
}

func shapeErrDType(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrDType}, args...)...)
}

func prod(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

func bytes32(n ...int) int64 {
	var s int64
	for _, x := range n {
		s += int64(x) * 4
	}
	return s
}
