package device

import (
	"context"

	"github.com/omniflow-go/omniflow/device/cpu"
	"github.com/omniflow-go/omniflow/tensor"
)

// MatMuler is a backend's matmul: out = op(a)·op(b) with NumPy batch
// broadcasting, as MatMul.
type MatMuler interface {
	MatMul(ctx context.Context, a, b *tensor.Tensor, transA, transB bool) (*tensor.Tensor, error)
}

// MatMul multiplies a [..., M, K] by b [..., K, N] (with transA, a is
// [..., K, M]; with transB, b is [..., N, K]); leading dimensions broadcast
// as in NumPy. The result is float32 [..., M, N].
func MatMul(ctx context.Context, a, b *tensor.Tensor, transA, transB bool) (*tensor.Tensor, error) {
	if a.Rank() < 2 || b.Rank() < 2 {
		return nil, shapeErr("matmul: operands must have rank >= 2, got %v and %v", a.Shape(), b.Shape())
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
		return nil, shapeErr("matmul: inner dimensions differ: %v%s · %v%s", a.Shape(), tr(transA), b.Shape(), tr(transB))
	}
	batch, err := cpu.BroadcastShape(a.Shape()[:a.Rank()-2], b.Shape()[:b.Rank()-2])
	if err != nil {
		return nil, shapeErr("matmul: batch dimensions: %v", err)
	}
	nb := prod(batch)
	k := begin(ctx, "matmul", cost{flops: 2 * int64(nb) * int64(m) * int64(n) * int64(ka),
		bytes: bytes32(a.NumElements(), b.NumElements(), nb*m*n)}, a, b)
	defer k.end()
	if out, ok, err := backend(k, func(d MatMuler) (*tensor.Tensor, error) { return d.MatMul(k.ctx, a, b, transA, transB) }); ok {
		return out, k.wrap(err)
	}
	in, err := k.data(a, b)
	if err != nil {
		return nil, err
	}
	lda, ldb := a.Dim(-1), b.Dim(-1)
	ad, bd := in[0], in[1]
	aBatch, bBatch := a.Shape()[:a.Rank()-2], b.Shape()[:b.Rank()-2]
	sa, sb := a.Dim(-2)*lda, b.Dim(-2)*ldb
	return k.output(append(append([]int(nil), batch...), m, n), func(cd []float32) error {
		switch {
		case prod(bBatch) == 1 && !transA:
			// [..., M, K]·[K, N]: one GEMM over all rows of a.
			cpu.Sgemm(k.cpu.Threads(), false, transB, nb*m, n, ka, 1, ad, lda, bd, ldb, 0, cd, n)
		case regularBatch(aBatch, batch) && regularBatch(bBatch, batch):
			sA, sB := sa, sb
			if prod(aBatch) == 1 {
				sA = 0
			}
			if prod(bBatch) == 1 {
				sB = 0
			}
			cpu.SgemmBatched(k.cpu.Threads(), transA, transB, nb, m, n, ka, 1, ad, sA, lda, bd, sB, ldb, 0, cd, m*n, n)
		default:
			for i := 0; i < nb; i++ {
				ia, ib := broadcastIndex(i, batch, aBatch), broadcastIndex(i, batch, bBatch)
				cpu.Sgemm(k.cpu.Threads(), transA, transB, m, n, ka, 1, ad[ia*sa:], lda, bd[ib*sb:], ldb, 0, cd[i*m*n:], n)
			}
		}
		return nil
	})
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
	if w.Rank() != 2 || x.Rank() < 1 || x.Dim(-1) != w.Dim(1) {
		return nil, shapeErr("linear: input %v does not fit weight %v", x.Shape(), w.Shape())
	}
	if bias != nil && (bias.Rank() != 1 || bias.Dim(0) != w.Dim(0)) {
		return nil, shapeErr("linear: bias %v does not fit weight %v", bias.Shape(), w.Shape())
	}
	rows := x.NumElements() / max(x.Dim(-1), 1)
	inF, outF := w.Dim(1), w.Dim(0)
	k := begin(ctx, "linear", cost{flops: 2 * int64(rows) * int64(inF) * int64(outF),
		bytes: bytes32(x.NumElements(), w.NumElements(), rows*outF)}, x, w)
	defer k.end()
	in, err := k.data(x, w, bias)
	if err != nil {
		return nil, err
	}
	shape := append(append([]int(nil), x.Shape()[:x.Rank()-1]...), outF)
	return k.output(shape, func(cd []float32) error {
		beta := float32(0)
		if b := in[2]; b != nil {
			for r := 0; r < rows; r++ {
				copy(cd[r*outF:(r+1)*outF], b)
			}
			beta = 1
		}
		cpu.Sgemm(k.cpu.Threads(), false, true, rows, outF, inF, 1, in[0], inF, in[1], inF, beta, cd, outF)
		return nil
	})
}
