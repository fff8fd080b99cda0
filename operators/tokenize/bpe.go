package tokenize

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// BPE is a byte-level BPE tokenizer (GPT-2, Qwen2, Llama 3) loaded from a
// Hugging Face tokenizer.json (see ParseTokenizerJSON). Encoding runs, in
// order: added tokens matched in the raw text (longest first, honouring
// lstrip/rstrip/single_word), the normalizer on the text between them, the
// pre-tokenizer splits, the byte-level mapping, and BPE merges by rank
// within each piece. No post-processor runs: Encode adds no BOS or EOS.
// Decoding maps vocabulary strings back through the byte-level alphabet;
// added tokens decode to their content. A BPE is safe for concurrent use.
type BPE struct {
	vocab     map[string]int32
	tokBytes  map[int32][]byte // id -> the bytes it decodes to
	added     map[string]int32
	matcher   *specialMatcher
	merges    map[uint64]mergeRule
	byteIDs   [256]int32 // id of each byte's single character, or NoToken
	normalize func(string) string
	pre       []preStage
	unk       int32
	fuseUnk   bool
	ignoreMrg bool
	vocabSize int
	roles     SpecialIDs
	cache     wordCache
}

var _ Tokenizer = (*BPE)(nil)
var _ TokenByter = (*BPE)(nil)

// mergeRule is what a pair of ids merges into, and the merge's rank
// (its line in the merges list; lower merges first).
type mergeRule struct{ rank, id int32 }

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// preStage is one pre-tokenizer: an optional prefix space, then a split.
type preStage struct {
	prefixSpace bool
	split       splitter // nil: no split
}

// Encode returns the ids of text. It fails only when a byte has no token
// in the vocabulary and the model has no unk_token.
func (t *BPE) Encode(text string) ([]int32, error) {
	out := make([]int32, 0, len(text)/3+1)
	var pieces []string
	var err error
	for _, seg := range t.matcher.split(text) {
		if seg.id != NoToken {
			out = append(out, seg.id)
			continue
		}
		s := seg.text
		if t.normalize != nil {
			s = t.normalize(s)
		}
		pieces = t.preTokenize(pieces[:0], s)
		for _, p := range pieces {
			if out, err = t.encodeWord(out, p); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func (t *BPE) preTokenize(dst []string, s string) []string {
	dst = append(dst, s)
	var next []string
	for _, st := range t.pre {
		next = next[:0]
		for _, p := range dst {
			if st.prefixSpace && !strings.HasPrefix(p, " ") {
				p = " " + p
			}
			if st.split == nil {
				next = append(next, p)
			} else {
				next = st.split.appendSplit(next, p)
			}
		}
		dst, next = next, dst
	}
	return dst
}

// maxCachedWord bounds the pieces the cache keeps (long runs of letters
// or digits are rare and would only crowd it).
const maxCachedWord = 128

func (t *BPE) encodeWord(dst []int32, word string) ([]int32, error) {
	if word == "" {
		return dst, nil
	}
	if ids, ok := t.cache.get(word); ok {
		return append(dst, ids...), nil
	}
	if t.ignoreMrg {
		if id, ok := t.vocab[ByteLevelString(word)]; ok {
			return append(dst, id), nil
		}
	}
	ids, err := t.mergeWord(word)
	if err != nil {
		return nil, err
	}
	if len(word) <= maxCachedWord {
		t.cache.put(word, ids)
	}
	return append(dst, ids...), nil
}

// symbol is a node of the doubly linked list of a word's current tokens.
type symbol struct {
	id         int32
	prev, next int32 // indexes, -1 at the ends
	dead       bool  // merged into its left neighbour
}

// candidate is a possible merge of symbols[pos] with its right neighbour.
type candidate struct {
	rank, pos, id int32
}

func (a candidate) less(b candidate) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos)
}

// mergeWord applies the merges to one piece: repeatedly the lowest-ranked
// adjacent pair, leftmost first on ties — Hugging Face's Word::merge_all,
// with a heap of candidates that are checked for staleness when popped.
// It is equivalent to GPT-2's loop of merging the best bigram everywhere.
func (t *BPE) mergeWord(word string) ([]int32, error) {
	syms := make([]symbol, 0, len(word))
	for i := 0; i < len(word); i++ {
		id := t.byteIDs[word[i]]
		if id == NoToken {
			if t.unk == NoToken {
				return nil, fmt.Errorf("%w: byte 0x%02x (%q) has no token and the model has no unk_token",
					ErrUnknownToken, word[i], string(byteToRune[word[i]]))
			}
			id = t.unk
			if t.fuseUnk && len(syms) > 0 && syms[len(syms)-1].id == t.unk {
				continue
			}
		}
		n := int32(len(syms))
		syms = append(syms, symbol{id: id, prev: n - 1, next: n + 1})
	}
	syms[len(syms)-1].next = -1

	var heap []candidate
	push := func(c candidate) {
		heap = append(heap, c)
		for i := len(heap) - 1; i > 0; {
			p := (i - 1) / 2
			if !heap[i].less(heap[p]) {
				break
			}
			heap[i], heap[p] = heap[p], heap[i]
			i = p
		}
	}
	pop := func() candidate {
		top := heap[0]
		last := len(heap) - 1
		heap[0] = heap[last]
		heap = heap[:last]
		for i := 0; ; {
			l, r, m := 2*i+1, 2*i+2, i
			if l < len(heap) && heap[l].less(heap[m]) {
				m = l
			}
			if r < len(heap) && heap[r].less(heap[m]) {
				m = r
			}
			if m == i {
				break
			}
			heap[i], heap[m] = heap[m], heap[i]
			i = m
		}
		return top
	}
	for i := 0; i+1 < len(syms); i++ {
		if m, ok := t.merges[pairKey(syms[i].id, syms[i+1].id)]; ok {
			push(candidate{rank: m.rank, pos: int32(i), id: m.id})
		}
	}
	for len(heap) > 0 {
		c := pop()
		left := &syms[c.pos]
		if left.dead || left.next < 0 {
			continue
		}
		right := &syms[left.next]
		if m, ok := t.merges[pairKey(left.id, right.id)]; !ok || m.id != c.id {
			continue // stale: a neighbour changed since it was pushed
		}
		left.id = c.id
		right.dead = true
		left.next = right.next
		if left.next >= 0 {
			syms[left.next].prev = c.pos
		}
		if left.prev >= 0 {
			if m, ok := t.merges[pairKey(syms[left.prev].id, left.id)]; ok {
				push(candidate{rank: m.rank, pos: left.prev, id: m.id})
			}
		}
		if left.next >= 0 {
			if m, ok := t.merges[pairKey(left.id, syms[left.next].id)]; ok {
				push(candidate{rank: m.rank, pos: c.pos, id: m.id})
			}
		}
	}
	ids := make([]int32, 0, len(syms))
	for i := int32(0); i >= 0; i = syms[i].next {
		ids = append(ids, syms[i].id)
	}
	return ids, nil
}

// Decode returns the text of ids; see Tokenizer.Decode.
func (t *BPE) Decode(ids []int32) (string, error) { return decodeBytes(t, ids) }

// TokenBytes returns the bytes id decodes to.
func (t *BPE) TokenBytes(id int32) ([]byte, error) {
	b, ok := t.tokBytes[id]
	if !ok {
		return nil, fmt.Errorf("%w: %d (vocabulary size %d)", ErrBadID, id, t.vocabSize)
	}
	return b, nil
}

// VocabSize is one more than the largest id of the vocabulary and the
// added tokens.
func (t *BPE) VocabSize() int { return t.vocabSize }

// Special returns the BOS, EOS and PAD ids.
func (t *BPE) Special() SpecialIDs { return t.roles }

// SpecialID returns the id of an added token.
func (t *BPE) SpecialID(name string) (int32, bool) {
	id, ok := t.added[name]
	return id, ok
}

// TokenID returns the id of a vocabulary string (in the byte-level
// alphabet: " world" is "Ġworld") or of an added token.
func (t *BPE) TokenID(tok string) (int32, bool) {
	if id, ok := t.added[tok]; ok {
		return id, true
	}
	id, ok := t.vocab[tok]
	return id, ok
}

// wordCache maps pieces to their ids; it stops growing at its capacity.
type wordCache struct {
	mu  sync.RWMutex
	m   map[string][]int32
	cap int
}

func (c *wordCache) get(w string) ([]int32, bool) {
	if c.cap <= 0 {
		return nil, false
	}
	c.mu.RLock()
	ids, ok := c.m[w]
	c.mu.RUnlock()
	return ids, ok
}

func (c *wordCache) put(w string, ids []int32) {
	if c.cap <= 0 {
		return
	}
	c.mu.Lock()
	if len(c.m) < c.cap {
		if c.m == nil {
			c.m = make(map[string][]int32)
		}
		c.m[strings.Clone(w)] = ids
	}
	c.mu.Unlock()
}

// validToken reports whether s can be a token string.
func validToken(s string) bool { return s != "" && utf8.ValidString(s) }
