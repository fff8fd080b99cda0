package nn_test

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omniflow-go/omniflow/operators/nn"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/memory"
	"github.com/omniflow-go/omniflow/tensor"
	"github.com/omniflow-go/omniflow/tensor/safetensors"
)

func TestRandomSourceIsDeterministicPerName(t *testing.T) {
	a, _ := nn.Random(42).Tensor("x.weight", []int{4, 4}, nn.Normal(0.02))
	b, _ := nn.Random(42).Tensor("x.weight", []int{4, 4}, nn.Normal(0.02))
	c, _ := nn.Random(42).Tensor("y.weight", []int{4, 4}, nn.Normal(0.02))
	d, _ := nn.Random(43).Tensor("x.weight", []int{4, 4}, nn.Normal(0.02))
	same := func(x, y *tensor.Tensor) bool {
		for i := range x.Float32s() {
			if x.Float32s()[i] != y.Float32s()[i] {
				return false
			}
		}
		return true
	}
	if !same(a, b) || same(a, c) || same(a, d) {
		t.Fatal("random weights depend on something other than seed and name")
	}
	var sq float64
	for _, v := range a.Float32s() {
		sq += float64(v) * float64(v)
	}
	if std := math.Sqrt(sq / 16); std > 0.05 || std < 0.005 {
		t.Errorf("std %g for Normal(0.02)", std)
	}
	ones, _ := nn.Random(1).Tensor("n.weight", []int{3}, nn.Ones)
	if ones.Float32s()[2] != 1 {
		t.Error("Ones init")
	}
}

// TestCheckpointLoadErrors: a missing or mis-shaped weight is an error at
// load time, naming the weight.
func TestCheckpointLoadErrors(t *testing.T) {
	w, _ := tensor.FromFloat32(make([]float32, 12), 3, 4)
	ints := tensor.Zeros(tensor.Int32, 3)
	src := nn.Checkpoint(nn.Map{"fc.weight": w, "fc.bias": ints})
	if _, err := nn.NewLinear(src, "fc", 4, 3, false); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		build   func() error
		wantErr string
	}{
		{"missing", func() error { _, err := nn.NewLinear(src, "proj", 4, 3, false); return err }, "proj.weight"},
		{"shape", func() error { _, err := nn.NewLinear(src, "fc", 3, 4, false); return err }, "fc.weight has shape [3 4], the model needs [4 3]"},
		{"dtype", func() error { _, err := nn.NewLinear(src, "fc", 4, 3, true); return err }, "fc.bias has dtype int32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.build()
			if !errors.Is(err, nn.ErrWeight) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want ErrWeight naming %q", err, tc.wantErr)
			}
		})
	}
}

// TestLinearFromSafetensors loads a bf16 checkpoint written by the test and
// checks y = x·Wᵀ + b in float64.
func TestLinearFromSafetensors(t *testing.T) {
	wf := []float32{1, 2, 3, -1, 0.5, 0.25}
	w32, _ := tensor.FromFloat32(wf, 2, 3)
	wbf, _ := w32.ConvertTo(tensor.BFloat16)
	b, _ := tensor.FromFloat32([]float32{10, -10}, 2)
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := safetensors.WriteFile(path, map[string]*tensor.Tensor{"fc.weight": wbf, "fc.bias": b}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	lin, err := nn.NewLinear(nn.Checkpoint(f), "fc", 3, 2, true)
	if err != nil {
		t.Fatal(err)
	}
	f.Close() // the layer holds copies
	x, _ := tensor.FromFloat32([]float32{1, 1, 2}, 1, 3)

	mem := memory.New()
	p, _ := profiler.New(profiler.WithSink(mem))
	ctx := context.Background()
	p.Start(ctx)
	actx, act := p.Enter(ctx, profiler.Track{}, "op")
	y, err := lin.Forward(actx, x)
	act.End(nil)
	p.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Values exactly representable in bf16, so the reference is exact.
	want := []float64{1 + 2 + 6 + 10, -1 + 0.5 + 0.5 - 10}
	for i, v := range y.Float32s() {
		if float64(v) != want[i] {
			t.Fatalf("y = %v, want %v", y.Float32s(), want)
		}
	}
	var module, kernel bool
	for _, r := range mem.Records() {
		if r.Kind == profiler.KindModule && r.Name == "Linear" {
			a, _ := r.Attr("name")
			module = a.AsString() == "fc"
		}
		kernel = kernel || (r.Kind == profiler.KindKernel && r.Name == "linear")
	}
	if !module || !kernel {
		t.Errorf("module span %v, kernel span %v", module, kernel)
	}
}
