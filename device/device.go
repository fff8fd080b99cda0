package device

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/omniflow-go/omniflow/tensor"
)

var (
	// ErrNotImplemented is returned by a backend kernel that the backend
	// lacks; the dispatcher then runs the CPU kernel.
	ErrNotImplemented = errors.New("device: kernel not implemented on this device")
	// ErrUnavailable reports a backend that cannot run here (no GPU, not
	// built with its tag).
	ErrUnavailable = errors.New("device: unavailable")
	// ErrShape reports operands whose shapes do not fit the kernel.
	ErrShape = tensor.ErrShape
	// ErrDType reports an unsupported dtype.
	ErrDType = tensor.ErrDType
	// ErrNilTensor reports a required operand that is nil; it wraps
	// ErrShape (a nil tensor has no shape to fit).
	ErrNilTensor = fmt.Errorf("%w: nil tensor", ErrShape)
	// ErrParam reports a scalar parameter out of its domain (a NaN eps or
	// scale, a negative repetition penalty, an unknown RoPE mode).
	ErrParam = errors.New("device: invalid parameter")
)

// Device is a place where tensors live and kernels run. It stays small:
// kernels are free functions in this package, dispatched on the device of
// their operands; a backend provides a kernel by implementing that kernel's
// one-method interface (see Kernels).
type Device interface {
	Name() string
	// Alloc returns a zeroed tensor of dt and shape in the device's memory.
	Alloc(ctx context.Context, dt tensor.DType, shape []int) (*tensor.Tensor, error)
	// Copy copies src into dst (same dtype and shape); either may be on the
	// host or on this device.
	Copy(ctx context.Context, dst, src *tensor.Tensor) error
	// Sync waits for the device's queued work.
	Sync(ctx context.Context) error
	Close() error
}

// MemoryStats is implemented by devices that account for their memory.
type MemoryStats interface {
	// InUse returns the bytes allocated and not yet released.
	InUse() int64
}

// CPU is the host device: tensors in Arrow buffers, kernels from package
// device/cpu on a number of goroutines.
type CPU struct {
	threads int
	mem     *countingAllocator
	sampled atomic.Int64 // InUse at the last memory counter sample
}

// CPUOption configures a CPU device.
type CPUOption func(*CPU)

// WithThreads sets the goroutines a kernel may use (default GOMAXPROCS).
func WithThreads(n int) CPUOption { return func(c *CPU) { c.threads = n } }

// WithAllocator sets the allocator that output tensors come from.
func WithAllocator(mem memory.Allocator) CPUOption {
	return func(c *CPU) { c.mem.inner = mem }
}

// NewCPU returns a CPU device.
func NewCPU(opts ...CPUOption) *CPU {
	c := &CPU{mem: &countingAllocator{inner: tensor.DefaultAllocator}}
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	if c.threads <= 0 {
		c.threads = runtime.GOMAXPROCS(0)
	}
	return c
}

// Name returns "cpu".
func (c *CPU) Name() string { return "cpu" }

// Threads returns the goroutines a kernel may use.
func (c *CPU) Threads() int { return c.threads }

// Alloc returns a zeroed host tensor from the device's allocator.
func (c *CPU) Alloc(_ context.Context, dt tensor.DType, shape []int) (*tensor.Tensor, error) {
	return tensor.New(dt, shape, tensor.WithAllocator(c.mem))
}

// Copy copies host tensors.
func (c *CPU) Copy(_ context.Context, dst, src *tensor.Tensor) error { return dst.CopyFrom(src) }

// Sync does nothing: CPU kernels are synchronous.
func (c *CPU) Sync(context.Context) error { return nil }

// Close does nothing.
func (c *CPU) Close() error { return nil }

// InUse returns the bytes of tensors allocated by this device and not yet
// released.
func (c *CPU) InUse() int64 { return c.mem.inUse.Load() }

// Allocator returns the device's (counting) allocator.
func (c *CPU) Allocator() memory.Allocator { return c.mem }

func (c *CPU) String() string { return fmt.Sprintf("cpu(%d threads)", c.threads) }

// countingAllocator wraps an Arrow allocator and counts the bytes in use.
type countingAllocator struct {
	inner memory.Allocator
	inUse atomic.Int64
}

func (a *countingAllocator) Allocate(size int) []byte {
	a.inUse.Add(int64(size))
	return a.inner.Allocate(size)
}

func (a *countingAllocator) Reallocate(size int, b []byte) []byte {
	a.inUse.Add(int64(size - len(b)))
	return a.inner.Reallocate(size, b)
}

func (a *countingAllocator) Free(b []byte) {
	a.inUse.Add(-int64(len(b)))
	a.inner.Free(b)
}

var defaultCPU atomic.Pointer[CPU]

func init() { defaultCPU.Store(NewCPU()) }

// DefaultCPU returns the CPU device that runs kernels on host tensors when
// the context names none.
func DefaultCPU() *CPU { return defaultCPU.Load() }

type ctxKey struct{}

// WithDevice returns a context whose kernels on host tensors run on cpu
// (its thread count and allocator): a stage can be given its own CPU.
func WithDevice(ctx context.Context, cpu *CPU) context.Context {
	return context.WithValue(ctx, ctxKey{}, cpu)
}

// CPUFrom returns the CPU device for host kernels under ctx.
func CPUFrom(ctx context.Context) *CPU {
	if c, ok := ctx.Value(ctxKey{}).(*CPU); ok && c != nil {
		return c
	}
	return DefaultCPU()
}

// Of returns the device a tensor lives on: its backend's device for device
// memory, the context's CPU for host memory.
func Of(ctx context.Context, t *tensor.Tensor) Device {
	if t.OnHost() {
		return CPUFrom(ctx)
	}
	if d, ok := t.DeviceBuffer().Owner().(Device); ok {
		return d
	}
	return CPUFrom(ctx)
}
