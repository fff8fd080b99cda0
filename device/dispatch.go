package device

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/tensor"
)

// cost is what a kernel span reports: floating-point operations and bytes
// moved (inputs read plus outputs written), so the summary can show
// achieved GFLOP/s and GB/s.
type cost struct {
	flops, bytes int64
}

// startKernel starts a kernel span with the op name, dtype, cost and, when
// the profile records shapes, the first two input shapes. The device is
// added when the kernel ends (end), once it is known which device ran it.
// This and end are the one place kernel spans come from.
func startKernel(ctx context.Context, name string, dt tensor.DType, c cost, in ...*tensor.Tensor) (context.Context, profiler.Span) {
	if !profiler.Recording(ctx) {
		return profiler.StartKind(ctx, profiler.KindKernel, name) // runtime/trace only
	}
	attrs := [profiler.MaxAttrs - 1]profiler.Attr{ // one left for the device
		profiler.String("dtype", dt.String()),
		profiler.Int64("flops", c.flops),
		profiler.Int64("bytes", c.bytes),
	}
	n := 3
	if profiler.RecordShapes(ctx) {
		for _, t := range in {
			if n == len(attrs) {
				break
			}
			if t != nil {
				attrs[n] = profiler.Ints(shapeKeys[n-3], t.Shape())
				n++
			}
		}
	}
	return profiler.StartKind(ctx, profiler.KindKernel, name, attrs[:n]...)
}

var shapeKeys = [...]string{"shape.in0", "shape.in1"}

// memSample emits dev's memory counter when it moved by at least 1/64 of
// its last sample or 1 MiB.
func memSample(ctx context.Context, dev Device) {
	ms, ok := dev.(MemoryStats)
	if !ok || !profiler.Recording(ctx) {
		return
	}
	v := ms.InUse()
	if c, ok := dev.(*CPU); ok {
		prev := c.sampled.Load()
		if moved(prev, v) && c.sampled.CompareAndSwap(prev, v) {
			profiler.Counter(ctx, "memory."+dev.Name(), float64(v))
		}
		return
	}
	if otherSamples.swap(dev, v) {
		profiler.Counter(ctx, "memory."+dev.Name(), float64(v))
	}
}

func moved(prev, v int64) bool {
	d := v - prev
	if d < 0 {
		d = -d
	}
	return d >= 1<<20 || d >= prev/64
}

// sampleTable holds the last memory sample of devices other than the CPU
// (which keeps its own). It is bounded: when full, the oldest entry makes
// room, so a process that makes many devices keeps none of them alive for
// long and the table never grows; a device pushed out merely has its next
// sample emitted.
type sampleTable struct {
	mu   sync.Mutex
	devs [16]Device
	last [16]int64
	next int
}

var otherSamples sampleTable

// swap records v for dev and reports whether it should be emitted.
func (s *sampleTable) swap(dev Device, v int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, d := range s.devs {
		if d == dev {
			if !moved(s.last[i], v) {
				return false
			}
			s.last[i] = v
			return true
		}
	}
	i := s.next
	s.next = (s.next + 1) % len(s.devs)
	s.devs[i], s.last[i] = dev, v
	return true
}

// float32s returns t as a contiguous float32 host tensor, converting other
// float dtypes (and copying device or strided tensors, from mem); release
// frees what was made here.
func float32s(ctx context.Context, mem memory.Allocator, t *tensor.Tensor) (*tensor.Tensor, func(), error) {
	if t == nil {
		return nil, func() {}, nil
	}
	if !t.DType().IsFloat() {
		return nil, nil, fmt.Errorf("%w: want a float tensor, got %v", ErrDType, t.DType())
	}
	if t.OnHost() && t.DType() == tensor.Float32 && t.IsContiguous() {
		return t, func() {}, nil
	}
	h := t
	if !t.OnHost() {
		var err error
		h, err = toHost(ctx, mem, t)
		if err != nil {
			return nil, nil, err
		}
	}
	var out *tensor.Tensor
	var err error
	if h.DType() == tensor.Float32 {
		out, err = h.Contiguous(tensor.WithAllocator(mem))
	} else {
		out, err = h.ConvertTo(tensor.Float32, tensor.WithAllocator(mem))
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
func hostContiguous(ctx context.Context, mem memory.Allocator, t *tensor.Tensor) (*tensor.Tensor, func(), error) {
	if t.OnHost() {
		c, err := t.Contiguous(tensor.WithAllocator(mem))
		if err != nil {
			return nil, nil, err
		}
		return c, c.Release, nil
	}
	h, err := toHost(ctx, mem, t)
	if err != nil {
		return nil, nil, err
	}
	return h, h.Release, nil
}

// toHost copies a device tensor to a new host tensor from mem.
func toHost(ctx context.Context, mem memory.Allocator, t *tensor.Tensor) (*tensor.Tensor, error) {
	dev := Of(ctx, t)
	h, err := tensor.New(t.DType(), t.Shape(), tensor.WithAllocator(mem))
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
	dev      Device // the operands' device
	ran      Device // the device that ran the kernel
	cpu      *CPU
	span     profiler.Span
	releases []func()
}

// begin starts a kernel call on the device of the first operand.
func begin(ctx context.Context, name string, c cost, in ...*tensor.Tensor) *kernelCall {
	k := &kernelCall{name: name, cpu: CPUFrom(ctx)}
	k.dev, k.ran = k.cpu, k.cpu
	dt := tensor.Float32
	for _, t := range in {
		if t != nil {
			k.dev = Of(ctx, t)
			dt = t.DType()
			break
		}
	}
	k.ctx, k.span = startKernel(ctx, name, dt, c, in...)
	return k
}

// end frees the operand copies, names the device that ran the kernel on
// its span, ends it and samples the memory of the devices that allocated.
func (k *kernelCall) end() {
	for _, r := range k.releases {
		r()
	}
	if k.span.Recording() {
		k.span.SetAttributes(profiler.String("device", k.ran.Name()))
	}
	k.span.End()
	if k.ran == Device(k.cpu) {
		memSample(k.ctx, k.cpu)
	}
	if k.dev != Device(k.cpu) {
		memSample(k.ctx, k.dev)
	}
}

// dispatch runs a kernel that produces a tensor: on the operands' device
// when its backend implements K and does not answer ErrNotImplemented,
// else on the CPU (host), with one span around either.
func dispatch[K any](ctx context.Context, name string, c cost, in []*tensor.Tensor,
	try func(ctx context.Context, b K) (*tensor.Tensor, error),
	host func(k *kernelCall) (*tensor.Tensor, error)) (*tensor.Tensor, error) {
	k := begin(ctx, name, c, in...)
	defer k.end()
	out, ok, err := backend(k, func(b K) (*tensor.Tensor, error) { return try(k.ctx, b) })
	if ok {
		if err == nil && out == nil {
			err = fmt.Errorf("device %s returned no result", k.dev.Name())
		}
		return out, k.wrap(err)
	}
	return host(k)
}

// backend tries the device's own kernel: ok is false when the device is
// the CPU, lacks the interface K, or answers ErrNotImplemented (then
// nothing ran there); otherwise the backend ran it and its result and
// error are returned.
func backend[K, R any](k *kernelCall, try func(K) (R, error)) (R, bool, error) {
	var zero R
	if _, isCPU := k.dev.(*CPU); isCPU {
		return zero, false, nil
	}
	impl, ok := k.dev.(K)
	if !ok {
		return zero, false, nil
	}
	out, err := try(impl)
	if errors.Is(err, ErrNotImplemented) {
		return zero, false, nil
	}
	k.ran = k.dev
	return out, true, err
}

// data returns the operands as float32 host data (nil for a nil operand),
// converting or copying where needed; the copies are freed by end.
func (k *kernelCall) data(ts ...*tensor.Tensor) ([][]float32, error) {
	out := make([][]float32, len(ts))
	for i, t := range ts {
		if t == nil {
			continue
		}
		f, r, err := float32s(k.ctx, k.cpu.mem, t)
		if err != nil {
			return nil, k.wrap(err)
		}
		k.releases = append(k.releases, r)
		out[i] = f.Float32s()
	}
	return out, nil
}

// output allocates the float32 result and, unless it is empty, runs the
// CPU kernel into it.
func (k *kernelCall) output(shape []int, run func(dst []float32) error) (*tensor.Tensor, error) {
	return k.outputOf(tensor.Float32, shape, func(out *tensor.Tensor) error { return run(out.Float32s()) })
}

// outputOf is output for a result of dtype dt.
func (k *kernelCall) outputOf(dt tensor.DType, shape []int, run func(out *tensor.Tensor) error) (*tensor.Tensor, error) {
	out, err := k.cpu.Alloc(k.ctx, dt, shape)
	if err != nil {
		return nil, k.wrap(err)
	}
	if out.NumElements() > 0 {
		if err := run(out); err != nil {
			out.Release()
			return nil, k.wrap(err)
		}
	}
	return k.finish(out, nil)
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

func paramErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrParam}, args...)...)
}

// operand is a named kernel argument, for validation messages.
type operand struct {
	name string
	t    *tensor.Tensor
}

// present reports the first required operand that is nil.
func present(kernel string, ops ...operand) error {
	for _, o := range ops {
		if o.t == nil {
			return fmt.Errorf("%s: %s: %w", kernel, o.name, ErrNilTensor)
		}
	}
	return nil
}

// floatOperands reports the first operand (nil ones skipped) that is not
// of a float dtype.
func floatOperands(kernel string, ops ...operand) error {
	for _, o := range ops {
		if o.t != nil && !o.t.DType().IsFloat() {
			return shapeErrDType("%s: %s is %v, want float32, float16 or bfloat16", kernel, o.name, o.t.DType())
		}
	}
	return nil
}

// checkLen reports a parameter tensor that does not hold n elements.
func checkLen(name string, t *tensor.Tensor, n int, what string) error {
	if t != nil && t.NumElements() != n {
		return shapeErr("%s: %s has %d elements, want %d", name, what, t.NumElements(), n)
	}
	return nil
}

// finite reports a float parameter that is NaN or infinite.
func finite(kernel, name string, v float32) error {
	if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
		return paramErr("%s: %s is %v, want a finite value", kernel, name, v)
	}
	return nil
}

// checkEps reports a normalization epsilon that is negative or not finite.
func checkEps(kernel string, eps float32) error {
	if err := finite(kernel, "eps", eps); err != nil {
		return err
	}
	if eps < 0 {
		return paramErr("%s: eps is %v, want >= 0", kernel, eps)
	}
	return nil
}

func prod(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// traffic returns the bytes a kernel moves: each operand read once at its
// own element size (2 bytes for float16 and bfloat16), plus out elements
// of 4 bytes (float32 or int32) written.
func traffic(out int, in ...*tensor.Tensor) int64 {
	s := 4 * int64(out)
	for _, t := range in {
		if t != nil {
			s += int64(t.NumElements()) * int64(t.DType().Size())
		}
	}
	return s
}
