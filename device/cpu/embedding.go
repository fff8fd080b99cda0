package cpu

import (
	"errors"
	"fmt"
)

// ErrTokenID reports a token id outside an embedding table.
var ErrTokenID = errors.New("cpu: token id out of range")

// Embedding copies row ids[i] of table ([vocab, dim]) into row i of dst
// ([len(ids), dim]). Token ids come from data (a tokenizer, a sampled
// token), so an id outside [0, vocab) is an error, not a panic; it is
// reported before anything is written.
func Embedding(threads int, dst, table []float32, vocab, dim int, ids []int32) error {
	mustDims("Embedding", vocab, dim)
	mustLen("Embedding", "table", table, vocab*dim)
	mustLen("Embedding", "dst", dst, len(ids)*dim)
	for i, id := range ids {
		if id < 0 || int(id) >= vocab {
			return fmt.Errorf("cpu: Embedding: ids[%d] = %d, vocabulary is [0, %d): %w", i, id, vocab, ErrTokenID)
		}
	}
	ParallelFor(threads, len(ids), grainFor(dim), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			id := int(ids[i])
			copy(dst[i*dim:(i+1)*dim], table[id*dim:(id+1)*dim])
		}
	})
	return nil
}
