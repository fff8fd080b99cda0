package omni

import (
	"bytes"
	"testing"
)

// FuzzReadQwen2Config: any config.json either fails with an error or
// gives a decoder config that passes validation.
func FuzzReadQwen2Config(f *testing.F) {
	f.Add([]byte(`{"hidden_size": 32, "intermediate_size": 80, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300, "rope_theta": 10000, "rms_norm_eps": 1e-6, "tie_word_embeddings": true}`))
	f.Add([]byte(`{"thinker_config": {"text_config": {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064}}}`))
	f.Add([]byte(`{"hidden_size": 32, "num_attention_heads": 0}`))
	f.Add([]byte(`{"hidden_size": -1, "intermediate_size": 1, "num_hidden_layers": 1, "num_attention_heads": 3, "vocab_size": 2, "head_dim": 3}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, _, err := ReadQwen2Config(bytes.NewReader(data))
		if err != nil {
			return
		}
		if err := c.validate("fuzz"); err != nil {
			t.Fatalf("accepted %+v: %v", c, err)
		}
	})
}
