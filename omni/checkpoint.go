package omni

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/omniflow-go/omniflow/tensor"
	"github.com/omniflow-go/omniflow/tensor/safetensors"
)

// qwen2JSON is the part of a Hugging Face Qwen2 config.json the thinker
// reads. Qwen2.5-Omni's config nests it as thinker_config.text_config.
type qwen2JSON struct {
	HiddenSize            *int     `json:"hidden_size"`
	IntermediateSize      *int     `json:"intermediate_size"`
	NumHiddenLayers       *int     `json:"num_hidden_layers"`
	NumAttentionHeads     *int     `json:"num_attention_heads"`
	NumKeyValueHeads      *int     `json:"num_key_value_heads"`
	HeadDim               *int     `json:"head_dim"`
	RMSNormEps            *float64 `json:"rms_norm_eps"`
	RopeTheta             *float64 `json:"rope_theta"`
	VocabSize             *int     `json:"vocab_size"`
	MaxPositionEmbeddings *int     `json:"max_position_embeddings"`
	TieWordEmbeddings     *bool    `json:"tie_word_embeddings"`
	TorchDtype            string   `json:"torch_dtype"`
	ModelType             string   `json:"model_type"`
	ThinkerConfig         *struct {
		TextConfig *qwen2JSON `json:"text_config"`
	} `json:"thinker_config"`
}

// maxConfigBytes bounds config.json.
const maxConfigBytes = 1 << 20

// ReadQwen2Config reads a Hugging Face Qwen2 config.json (or a
// Qwen2.5-Omni one, from its thinker_config.text_config): hidden_size,
// intermediate_size, num_hidden_layers, num_attention_heads,
// num_key_value_heads, rms_norm_eps, rope_theta, vocab_size,
// max_position_embeddings, tie_word_embeddings (absent values take
// transformers' Qwen2Config defaults: kv heads = heads, rope_theta 10000,
// untied). torch_dtype is
// returned for information: weights of any float dtype are converted to
// float32 at load.
func ReadQwen2Config(r io.Reader) (DecoderConfig, string, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxConfigBytes+1))
	if err != nil {
		return DecoderConfig{}, "", fmt.Errorf("omni: config.json: %w", err)
	}
	if len(data) > maxConfigBytes {
		return DecoderConfig{}, "", fmt.Errorf("omni: config.json is larger than %d bytes", maxConfigBytes)
	}
	var j qwen2JSON
	if err := json.Unmarshal(data, &j); err != nil {
		return DecoderConfig{}, "", fmt.Errorf("omni: config.json: %w", err)
	}
	if j.HiddenSize == nil && j.ThinkerConfig != nil && j.ThinkerConfig.TextConfig != nil {
		j = *j.ThinkerConfig.TextConfig
	}
	var missing []string
	need := func(name string, p *int) int {
		if p == nil {
			missing = append(missing, name)
			return 0
		}
		return *p
	}
	c := DecoderConfig{
		Hidden:       need("hidden_size", j.HiddenSize),
		Intermediate: need("intermediate_size", j.IntermediateSize),
		Layers:       need("num_hidden_layers", j.NumHiddenLayers),
		Heads:        need("num_attention_heads", j.NumAttentionHeads),
		Vocab:        need("vocab_size", j.VocabSize),
	}
	if len(missing) > 0 {
		return DecoderConfig{}, "", fmt.Errorf("omni: config.json lacks %s", strings.Join(missing, ", "))
	}
	if j.NumKeyValueHeads != nil {
		c.KVHeads = *j.NumKeyValueHeads
	}
	if j.HeadDim != nil {
		c.HeadDim = *j.HeadDim
	}
	if j.RMSNormEps != nil {
		c.RMSEps = *j.RMSNormEps
	}
	if j.RopeTheta != nil {
		c.RopeTheta = *j.RopeTheta
	} else {
		c.RopeTheta = 10000 // transformers' Qwen2Config default
	}
	if j.MaxPositionEmbeddings != nil {
		c.MaxPositions = *j.MaxPositionEmbeddings
	}
	if j.TieWordEmbeddings != nil {
		c.TiedEmbeddings = *j.TieWordEmbeddings
	}
	c.defaults()
	if err := c.validate("config.json"); err != nil {
		return DecoderConfig{}, "", err
	}
	return c, j.TorchDtype, nil
}

// checkpoint is a directory of safetensors files seen as one set of
// named tensors.
type checkpoint struct {
	files  []*safetensors.File
	byName map[string]*safetensors.File
	prefix string // "" for Qwen2ForCausalLM, "thinker." for Qwen2.5-Omni
}

// openCheckpoint opens model.safetensors, or the shards listed by
// model.safetensors.index.json, or every *.safetensors in dir.
func openCheckpoint(dir string) (*checkpoint, error) {
	var paths []string
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err == nil {
		paths = []string{filepath.Join(dir, "model.safetensors")}
	} else if data, err := os.ReadFile(filepath.Join(dir, "model.safetensors.index.json")); err == nil {
		var idx struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(data, &idx); err != nil {
			return nil, fmt.Errorf("omni: model.safetensors.index.json: %w", err)
		}
		seen := map[string]bool{}
		for _, f := range idx.WeightMap {
			if strings.Contains(f, "/") || strings.Contains(f, `\`) || f == ".." {
				return nil, fmt.Errorf("omni: model.safetensors.index.json names %q outside the checkpoint", f)
			}
			if !seen[f] {
				seen[f] = true
				paths = append(paths, filepath.Join(dir, f))
			}
		}
		sort.Strings(paths)
	} else {
		paths, _ = filepath.Glob(filepath.Join(dir, "*.safetensors"))
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("omni: no safetensors files in %s", dir)
	}
	c := &checkpoint{byName: map[string]*safetensors.File{}}
	for _, p := range paths {
		f, err := safetensors.Open(p)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("omni: %w", err)
		}
		c.files = append(c.files, f)
		for _, n := range f.Names() {
			c.byName[n] = f
		}
	}
	if _, ok := c.byName["model.embed_tokens.weight"]; !ok {
		if _, ok := c.byName["thinker.model.embed_tokens.weight"]; ok {
			c.prefix = "thinker."
		}
	}
	return c, nil
}

// errNoTensor reports a weight absent from the checkpoint.
var errNoTensor = errors.New("not in the checkpoint")

// Tensor returns the named tensor (under the detected prefix).
func (c *checkpoint) Tensor(name string) (*tensor.Tensor, error) {
	f, ok := c.byName[c.prefix+name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", c.prefix+name, errNoTensor)
	}
	return f.Tensor(c.prefix + name)
}

// Close unmaps the files.
func (c *checkpoint) Close() error {
	var errs []error
	for _, f := range c.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}
