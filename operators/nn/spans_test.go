package nn_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/profiler"
	memsink "github.com/omniflow-go/omniflow/sinks/memory"
)

// topSpan returns the layer's own span path, "Type(name)", and the name.
func (c layerCase) topSpan() (path, name string) {
	for p := range c.spans {
		if !strings.Contains(p, "/") {
			return p, p[strings.IndexByte(p, '(')+1 : len(p)-1]
		}
	}
	panic("layer case " + c.name + " lists no module span of its own")
}

// spanPaths returns the spans recorded under the record with id root, as
// paths of "Type(name)" for module spans and the kernel's name for
// kernels, counted; a span whose parent chain does not reach root is
// reported as an orphan.
func spanPaths(t *testing.T, recs []profiler.Record, root uint64) map[string]int {
	t.Helper()
	byID := map[uint64]profiler.Record{}
	for _, r := range recs {
		if r.Kind.IsSpan() {
			byID[r.ID] = r
		}
	}
	label := func(r profiler.Record) string {
		if r.Kind != profiler.KindModule {
			return r.Name
		}
		n, _ := r.Attr("name")
		return fmt.Sprintf("%s(%s)", r.Name, n.AsString())
	}
	out := map[string]int{}
	for _, r := range recs {
		if !r.Kind.IsSpan() || r.ID == root {
			continue
		}
		if r.Kind != profiler.KindModule && r.Kind != profiler.KindKernel {
			t.Errorf("unexpected %v span %q", r.Kind, r.Name)
			continue
		}
		path := []string{label(r)}
		p := r.Parent
		for p != root {
			pr, ok := byID[p]
			if !ok {
				path = append(path, fmt.Sprintf("orphan(parent %d)", p))
				break
			}
			path = append(path, label(pr))
			p = pr.Parent
		}
		slices.Reverse(path)
		out[strings.Join(path, "/")]++
	}
	return out
}

// TestLayersRecordModuleSpans runs every layer's forward pass inside a
// profiled activation: each records exactly one module span of its type,
// named by the layer, directly under the caller, and every kernel and
// sub-layer it runs nests inside that span.
func TestLayersRecordModuleSpans(t *testing.T) {
	for _, c := range layerCases(t) {
		t.Run(c.name, func(t *testing.T) {
			store := memsink.New()
			p, err := profiler.New(profiler.WithSink(store))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := p.Start(ctx); err != nil {
				t.Fatal(err)
			}
			actx, act := p.Enter(ctx, profiler.Track{}, "op")
			y, err := c.run(actx, nil)
			act.End(err)
			if _, serr := p.Stop(ctx); serr != nil {
				t.Fatal(serr)
			}
			if err != nil {
				t.Fatal(err)
			}
			y.Release()

			recs := store.Records()
			var root []profiler.Record
			for _, r := range recs {
				if r.Kind == profiler.KindOperator && r.Name == "op" {
					root = append(root, r)
				}
			}
			if len(root) != 1 {
				t.Fatalf("%d operator records for the activation, want 1", len(root))
			}
			top, _ := c.topSpan()
			var direct []string
			for _, r := range recs {
				if r.Kind.IsSpan() && r.Parent == root[0].ID {
					n, _ := r.Attr("name")
					direct = append(direct, fmt.Sprintf("%v %s(%s)", r.Kind, r.Name, n.AsString()))
				}
			}
			if want := []string{"module " + top}; !slices.Equal(direct, want) {
				t.Errorf("spans directly under the caller: %q, want %q", direct, want)
			}
			got := spanPaths(t, recs, root[0].ID)
			if !maps.Equal(got, c.spans) {
				t.Errorf("spans:\n%s\nwant:\n%s", formatCounts(got), formatCounts(c.spans))
			}
		})
	}
}

func formatCounts(m map[string]int) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "  %d × %s\n", m[k], k)
	}
	return b.String()
}

// TestLayersReleaseEveryBuffer runs every layer's forward pass (and its
// failing passes) on a CPU device whose tensors come from a checked Arrow
// allocator, inputs included: once the caller releases the inputs and the
// output, nothing is left allocated, so every intermediate — projections,
// rotated copies, activations, contiguous copies of views — was released.
func TestLayersReleaseEveryBuffer(t *testing.T) {
	for _, c := range layerCases(t) {
		t.Run(c.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			cpu := device.NewCPU(device.WithAllocator(mem), device.WithThreads(2))
			ctx := device.WithDevice(context.Background(), cpu)
			y, err := c.run(ctx, mem)
			if err != nil {
				t.Fatal(err)
			}
			// The output came from the checked allocator, so the check
			// below covers the layer's buffers, not only the inputs.
			if y.Allocator() != cpu.Allocator() || mem.CurrentAlloc() < y.SizeBytes() {
				t.Fatalf("output from %v, %d bytes allocated: not the device's checked allocator", y.Allocator(), mem.CurrentAlloc())
			}
			y.Release()
			mem.AssertSize(t, 0)

			if c.fail == nil {
				return
			}
			err = c.fail(ctx, mem)
			if _, name := c.topSpan(); err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("failing pass: err %v, want an error naming %q", err, name)
			}
			mem.AssertSize(t, 0)
		})
	}
}
