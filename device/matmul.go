package device

import (
	"context"
	"fmt"

	"github.com/omniflow-go/omniflow/device/cpu"
	"github.com/omniflow-go/omniflow/tensor"
)

// MatMul multiplies a [..., M, K] by b [..., K, N] (with transA, a is
// [..., K, M]; with transB, b is [..., N, K]); leading dimensions broadcast
// as in NumPy. The result is float32 [..., M, N]; with K = 0 it is zeros.
func MatMul(ctx context.Context, a, b *tensor.Tensor, transA, transB bool) (*tensor.Tensor, error) {
	if err := present("matmul", operand{"a", a}, operand{"b", b}); err != nil {
		return nil, err
	}
	if a.Rank() < 2 || b.Rank() < 2 {
		return nil, shapeErr("matmul: operands must have rank >= 2, got a %v and b %v", a.Shape(), b.Shape())
	}
	if err := floatOperands("matmul", operand{"a", a}, operand{"b", b}); err != nil {
		return nil, err
	}
	m, ka := a.Dim(-2), a.Dim(-1)
	if transA {
		m, ka = ka, m
	}
	kb, n := b.Dim(-2), b.Dim(-1)
	if transB {
		kb, n = n, kb
	}
	if ka != kb {
		return nil, shapeErr("matmul: inner dimensions differ: a %v%s · b %v%s", a.Shape(), tr(transA), b.Shape(), tr(transB))
	}
	batch, err := cpu.BroadcastShape(a.Shape()[:a.Rank()-2], b.Shape()[:b.Rank()-2])
	if err != nil {
		return nil, shapeErr("matmul: batch dimensions of a %v and b %v: %v", a.Shape(), b.Shape(), err)
	}
	nb := prod(batch)
	shape := append(append([]int(nil), batch...), m, n)
	if _, err := tensor.NumElements(shape); err != nil {
		return nil, fmt.Errorf("matmul: result: %w", err)
	}
	c := cost{flops: 2 * int64(nb) * int64(m) * int64(n) * int64(ka), bytes: traffic(nb*m*n, a, b)}
	return dispatch(ctx, "matmul", c, []*tensor.Tensor{a, b},
		func(ctx context.Context, d MatMuler) (*tensor.Tensor, error) {
			return d.MatMul(ctx, a, b, transA, transB)
		},
		func(k *kernelCall) (*tensor.Tensor, error) {
			in, err := k.data(a, b)
			if err != nil {
				return nil, err
			}
			return k.output(shape, func(cd []float32) error {
				if ka == 0 {
					return nil // an empty sum: the zeros of the fresh output
				}
				matmulHost(k.cpu.Threads(), cd, in[0], a.Shape(), in[1], b.Shape(), batch, m, n, ka, transA, transB)
				return nil
			})
		})
}

// matmulHost runs MatMul's GEMMs on contiguous float32 operands (m, n and
// k all > 0).
func matmulHost(threads int, cd, ad []float32, aShape []int, bd []float32, bShape []int, batch []int, m, n, ka int, transA, transB bool) {
	nb := prod(batch)
	ra, rb := len(aShape), len(bShape)
	lda, ldb := aShape[ra-1], bShape[rb-1]
	aBatch, bBatch := aShape[:ra-2], bShape[:rb-2]
	sa, sb := aShape[ra-2]*lda, bShape[rb-2]*ldb
	switch {
	case prod(bBatch) == 1 && !transA:
		// [..., M, K]·[K, N]: one GEMM over all rows of a.
		cpu.Sgemm(threads, false, transB, nb*m, n, ka, 1, ad, lda, bd, ldb, 0, cd, n)
	case regularBatch(aBatch, batch) && regularBatch(bBatch, batch):
		sA, sB := sa, sb
		if prod(aBatch) == 1 {
			sA = 0
		}
		if prod(bBatch) == 1 {
			sB = 0
		}
		cpu.SgemmBatched(threads, transA, transB, nb, m, n, ka, 1, ad, sA, lda, bd, sB, ldb, 0, cd, m*n, n)
	default:
		for i := 0; i < nb; i++ {
			ia, ib := broadcastIndex(i, batch, aBatch), broadcastIndex(i, batch, bBatch)
			cpu.Sgemm(threads, transA, transB, m, n, ka, 1, ad[ia*sa:], lda, bd[ib*sb:], ldb, 0, cd[i*m*n:], n)
		}
	}
}

func tr(t bool) string {
	if t {
		return "ᵀ"
	}
	return ""
}

// regularBatch reports whether operand batch dims are either the full
// broadcast batch or a single matrix.
func regularBatch(op, full []int) bool {
	if prod(op) == 1 {
		return true
	}
	if len(op) != len(full) {
		return prod(op) == prod(full) && tensor.SameShape(op, full[len(full)-len(op):]) && prod(full[:len(full)-len(op)]) == 1
	}
	return tensor.SameShape(op, full)
}

// broadcastIndex maps flat index i over full to the flat index in op.
func broadcastIndex(i int, full, op []int) int {
	idx, mul := 0, 1
	for d := len(full) - 1; d >= 0; d-- {
		x := i % full[d]
		i /= full[d]
		j := d - (len(full) - len(op))
		if j < 0 {
			continue
		}
		if op[j] != 1 {
			idx += x * mul
		}
		mul *= op[j]
	}
	return idx
}

// Linear computes x·wᵀ + bias for x [..., in], w [out, in] (the Hugging
// Face layout) and an optional bias [out].
func Linear(ctx context.Context, x, w, bias *tensor.Tensor) (*tensor.Tensor, error) {
	if err := present("linear", operand{"x", x}, operand{"weight", w}); err != nil {
		return nil, err
	}
	if w.Rank() != 2 || x.Rank() < 1 || x.Dim(-1) != w.Dim(1) {
		return nil, shapeErr("linear: input %v does not fit weight %v (want [..., in] and [out, in])", x.Shape(), w.Shape())
	}
	if bias != nil && (bias.Rank() != 1 || bias.Dim(0) != w.Dim(0)) {
		return nil, shapeErr("linear: bias %v does not fit weight %v", bias.Shape(), w.Shape())
	}
	if err := floatOperands("linear", operand{"x", x}, operand{"weight", w}, operand{"bias", bias}); err != nil {
		return nil, err
	}
	rows := prod(x.Shape()[:x.Rank()-1])
	inF, outF := w.Dim(1), w.Dim(0)
	shape := append(append([]int(nil), x.Shape()[:x.Rank()-1]...), outF)
	c := cost{flops: 2 * int64(rows) * int64(inF) * int64(outF), bytes: traffic(rows*outF, x, w, bias)}
	return dispatch(ctx, "linear", c, []*tensor.Tensor{x, w},
		func(ctx context.Context, d Linearer) (*tensor.Tensor, error) { return d.Linear(ctx, x, w, bias) },
		func(k *kernelCall) (*tensor.Tensor, error) {
			in, err := k.data(x, w, bias)
			if err != nil {
				return nil, err
			}
			return k.output(shape, func(cd []float32) error {
				beta := float32(0)
				if b := in[2]; b != nil {
					for r := 0; r < rows; r++ {
						copy(cd[r*outF:(r+1)*outF], b)
					}
					beta = 1
				}
				if inF > 0 {
					cpu.Sgemm(k.cpu.Threads(), false, true, rows, outF, inF, 1, in[0], inF, in[1], inF, beta, cd, outF)
				}
				return nil
			})
		})
}
