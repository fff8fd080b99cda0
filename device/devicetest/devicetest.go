// Package devicetest runs one test body on every available device (the
// GoMLX habit): the CPU, and Sim, a device whose memory is not host memory
// and which implements no kernel, so every kernel takes the dispatcher's
// CPU fallback and copies back. A device that is absent here (CUDA without
// its build tag or a GPU) is skipped, never failed.
package devicetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/tensor"
)

// Each runs fn once per available device, as a subtest named after it.
func Each(t *testing.T, fn func(t *testing.T, dev device.Device)) {
	t.Helper()
	for _, d := range []device.Device{device.NewCPU(), NewSim()} {
		t.Run(d.Name(), func(t *testing.T) { fn(t, d) })
	}
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

// Sim is a simulated accelerator: its tensors live in buffers the host
// cannot address as tensors, and it has no kernels of its own (MatMul is
// declared and answers ErrNotImplemented, to prove the fallback).
type Sim struct {
	MatMulCalls atomic.Int64
	live        atomic.Int64
}

// NewSim returns a simulated device.
func NewSim() *Sim { return &Sim{} }

func (s *Sim) Name() string { return "sim" }

// InUse returns the bytes held by live buffers.
func (s *Sim) InUse() int64 { return s.live.Load() }

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
	n, err := tensor.NumElements(shape)
	if err != nil {
		return nil, err
	}
	buf := &simBuffer{dev: s, data: make([]byte, n*dt.Size())}
	s.live.Add(int64(len(buf.data)))
	return tensor.FromDevice(dt, shape, buf)
}

// Copy copies between host and this device (contiguous device tensors).
func (s *Sim) Copy(_ context.Context, dst, src *tensor.Tensor) error {
	if dst.DType() != src.DType() || !tensor.SameShape(dst.Shape(), src.Shape()) {
		return fmt.Errorf("sim: copy %v into %v", src, dst)
	}
	bytesOf := func(t *tensor.Tensor) ([]byte, func(), error) {
		if t.OnHost() {
			c, err := t.Contiguous()
			if err != nil {
				return nil, nil, err
			}
			return c.Bytes(), c.Release, nil
		}
		b, ok := t.DeviceBuffer().(*simBuffer)
		if !ok || b.dev != s {
			return nil, nil, fmt.Errorf("sim: %v is on another device", t)
		}
		return b.data[t.Offset()*t.DType().Size():][:t.SizeBytes()], func() {}, nil
	}
	sb, rel, err := bytesOf(src)
	if err != nil {
		return err
	}
	defer rel()
	if dst.OnHost() {
		if !dst.IsContiguous() {
			return fmt.Errorf("sim: copy into a strided host view")
		}
		copy(dst.Bytes(), sb)
		return nil
	}
	db, _, err := bytesOf(dst)
	if err != nil {
		return err
	}
	copy(db, sb)
	return nil
}

func (s *Sim) Sync(context.Context) error { return nil }
func (s *Sim) Close() error               { return nil }

// MatMul declares the kernel and lacks it.
func (s *Sim) MatMul(context.Context, *tensor.Tensor, *tensor.Tensor, bool, bool) (*tensor.Tensor, error) {
	s.MatMulCalls.Add(1)
	return nil, device.ErrNotImplemented
}

func (s *Sim) String() string { return "sim" }
