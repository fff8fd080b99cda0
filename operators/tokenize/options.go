package tokenize

import (
	"fmt"
	"slices"
)

// Option configures NewByteTokenizer and LoadBPE.
type Option func(*config)

type config struct {
	specials      []string // byte tokenizer only; nil: the defaults
	bos, eos, pad *string  // nil: the first candidate present
	cacheSize     int      // BPE word cache entries
}

// WithSpecialTokens replaces the byte tokenizer's special tokens (ids 256,
// 257, ... in the given order). Names must be non-empty, valid UTF-8 and
// distinct. A BPE tokenizer takes its special tokens from its file, and
// rejects this option.
func WithSpecialTokens(names ...string) Option {
	names = slices.Clone(names)
	if names == nil {
		names = []string{}
	}
	return func(c *config) { c.specials = names }
}

// WithRoles names the BOS, EOS and PAD tokens; "" means none. Each named
// token must be a special (added) token. Without this option each role is
// the first of these that exists (the Qwen2.5-Omni choices first):
//
//	BOS: <|begin_of_text|>, <s>            (Qwen has none)
//	EOS: <|im_end|>, <|endoftext|>, <|end_of_text|>, </s>
//	PAD: <pad>, <|endoftext|>, <|finetune_right_pad_id|>
func WithRoles(bos, eos, pad string) Option {
	return func(c *config) { c.bos, c.eos, c.pad = &bos, &eos, &pad }
}

// WithCacheSize bounds the BPE tokenizer's word cache (default 10000
// entries, as in Hugging Face tokenizers; 0 disables it).
func WithCacheSize(n int) Option { return func(c *config) { c.cacheSize = n } }

func newConfig(opts []Option) config {
	c := config{cacheSize: 10000}
	for _, o := range opts {
		o(&c)
	}
	return c
}

var roleCandidates = [3][]string{
	{"<|begin_of_text|>", "<s>"},
	{"<|im_end|>", "<|endoftext|>", "<|end_of_text|>", "</s>"},
	{"<pad>", "<|endoftext|>", "<|finetune_right_pad_id|>"},
}

// roles resolves BOS, EOS and PAD against lookup.
func (c *config) roles(lookup func(string) (int32, bool)) (SpecialIDs, error) {
	set := [3]*string{c.bos, c.eos, c.pad}
	what := [3]string{"BOS", "EOS", "PAD"}
	var ids [3]int32
	for i := range ids {
		ids[i] = NoToken
		if set[i] == nil {
			for _, name := range roleCandidates[i] {
				if id, ok := lookup(name); ok {
					ids[i] = id
					break
				}
			}
			continue
		}
		if *set[i] == "" {
			continue
		}
		id, ok := lookup(*set[i])
		if !ok {
			return SpecialIDs{}, fmt.Errorf("%w: %s token %q is not a special token", ErrUnknownToken, what[i], *set[i])
		}
		ids[i] = id
	}
	return SpecialIDs{BOS: ids[0], EOS: ids[1], PAD: ids[2]}, nil
}
