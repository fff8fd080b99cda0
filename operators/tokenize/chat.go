package tokenize

import (
	"fmt"
	"strings"
)

// PartKind says what a message part holds.
type PartKind int

const (
	TextKind PartKind = iota
	AudioKind
	ImageKind
	VideoKind
)

func (k PartKind) String() string {
	switch k {
	case TextKind:
		return "text"
	case AudioKind:
		return "audio"
	case ImageKind:
		return "image"
	case VideoKind:
		return "video"
	}
	return fmt.Sprintf("PartKind(%d)", int(k))
}

// Part is a piece of a chat message: text, or a placeholder span for one
// audio clip, image or video that the encoder's embeddings will replace.
// Tokens is the span's length in tokens (AudioPlaceholderCount for audio;
// the vision package's merged patch count for images and video).
type Part struct {
	Kind   PartKind
	Text   string
	Tokens int
}

// TextPart, AudioPart, ImagePart and VideoPart build parts.
func TextPart(s string) Part     { return Part{Kind: TextKind, Text: s} }
func AudioPart(tokens int) Part  { return Part{Kind: AudioKind, Tokens: tokens} }
func ImagePart(tokens int) Part  { return Part{Kind: ImageKind, Tokens: tokens} }
func VideoPart(tokens int) Part  { return Part{Kind: VideoKind, Tokens: tokens} }
func (p Part) placeholder() bool { return p.Kind != TextKind }

// Message is one turn: a role ("system", "user", "assistant") and parts.
type Message struct {
	Role  string
	Parts []Part
}

// Prompts of the Qwen2.5-Omni template: the template's own default, and
// the one Qwen2.5-Omni needs to answer with speech.
const (
	DefaultSystemPrompt  = "You are a helpful assistant."
	QwenOmniSystemPrompt = "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of perceiving auditory and visual inputs, as well as generating text and speech."
)

// ChatOptions adjust RenderChat and EncodeChat.
type ChatOptions struct {
	// System is the system prompt inserted when the first message is not
	// a system message; "" means DefaultSystemPrompt.
	System string
	// AddGenerationPrompt ends the prompt with "<|im_start|>assistant\n".
	AddGenerationPrompt bool
}

// MaxPlaceholderTokens bounds one part's placeholder span.
const MaxPlaceholderTokens = 1 << 22

// The Qwen2.5-Omni template's special tokens.
const (
	imStart   = "<|im_start|>"
	imEnd     = "<|im_end|>"
	audioBOS  = "<|audio_bos|>"
	audioEOS  = "<|audio_eos|>"
	audioPad  = "<|AUDIO|>"
	visionBOS = "<|vision_bos|>"
	visionEOS = "<|vision_eos|>"
	imagePad  = "<|IMAGE|>"
	videoPad  = "<|VIDEO|>"
)

// chatItem is literal text, a special token, or a placeholder span (the
// special token repeated n times).
type chatItem struct {
	text    string
	special string
	n       int
	kind    PartKind
}

// chatItems lays out the Qwen2.5-Omni chat template (its chat_template
// with add_vision_id and add_audio_id off), with each placeholder already
// expanded as the processor does:
//
//	<|im_start|>system\n{system}<|im_end|>\n
//	<|im_start|>user\n{text}<|audio_bos|><|AUDIO|>×n<|audio_eos|>{text}<|im_end|>\n
//	<|im_start|>assistant\n
//
// Images are <|vision_bos|><|IMAGE|>×n<|vision_eos|>, videos the same with
// <|VIDEO|>.
func chatItems(msgs []Message, opts ChatOptions) ([]chatItem, error) {
	var items []chatItem
	if len(msgs) == 0 || msgs[0].Role != "system" {
		sys := opts.System
		if sys == "" {
			sys = DefaultSystemPrompt
		}
		items = append(items, chatItem{special: imStart}, chatItem{text: "system\n" + sys}, chatItem{special: imEnd}, chatItem{text: "\n"})
	}
	for i, m := range msgs {
		if m.Role == "" || strings.ContainsAny(m.Role, "\n") {
			return nil, fmt.Errorf("tokenize: chat message %d: role %q must be non-empty and one line", i, m.Role)
		}
		items = append(items, chatItem{special: imStart}, chatItem{text: m.Role + "\n"})
		for j, p := range m.Parts {
			if !p.placeholder() {
				if p.Kind != TextKind {
					return nil, fmt.Errorf("tokenize: chat message %d part %d: unknown kind %v", i, j, p.Kind)
				}
				items = append(items, chatItem{text: p.Text})
				continue
			}
			if p.Tokens <= 0 || p.Tokens > MaxPlaceholderTokens {
				return nil, fmt.Errorf("tokenize: chat message %d part %d: %v span of %d tokens, want 1..%d",
					i, j, p.Kind, p.Tokens, MaxPlaceholderTokens)
			}
			bos, pad, eos := visionBOS, imagePad, visionEOS
			switch p.Kind {
			case AudioKind:
				bos, pad, eos = audioBOS, audioPad, audioEOS
			case VideoKind:
				pad = videoPad
			case ImageKind:
			default:
				return nil, fmt.Errorf("tokenize: chat message %d part %d: unknown kind %v", i, j, p.Kind)
			}
			items = append(items, chatItem{special: bos}, chatItem{special: pad, n: p.Tokens, kind: p.Kind}, chatItem{special: eos})
		}
		items = append(items, chatItem{special: imEnd}, chatItem{text: "\n"})
	}
	if opts.AddGenerationPrompt {
		items = append(items, chatItem{special: imStart}, chatItem{text: "assistant\n"})
	}
	return items, nil
}

// RenderChat returns the Qwen2.5-Omni prompt text for msgs, with every
// placeholder span expanded (the text a Hugging Face processor would
// tokenize).
func RenderChat(msgs []Message, opts ChatOptions) (string, error) {
	items, err := chatItems(msgs, opts)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, it := range items {
		if it.special == "" {
			b.WriteString(it.text)
			continue
		}
		b.WriteString(strings.Repeat(it.special, max(it.n, 1)))
	}
	return b.String(), nil
}

// Span locates a placeholder span in a prompt: IDs[Start:Start+Len] are
// the placeholder tokens for one audio clip, image or video.
type Span struct {
	Kind       PartKind
	Start, Len int
}

// Prompt is an encoded chat prompt and where its placeholder spans are,
// in the order of the parts.
type Prompt struct {
	IDs   []int32
	Spans []Span
}

// EncodeChat encodes the Qwen2.5-Omni prompt for msgs with tok. Text
// between special tokens is encoded as one string, so the ids equal
// tok.Encode(RenderChat(msgs, opts)) for a tokenizer that has the
// template's special tokens; and like that, special-token strings inside
// message text are recognized as special tokens. A special token the
// tokenizer lacks is an ErrUnknownToken.
func EncodeChat(tok Tokenizer, msgs []Message, opts ChatOptions) (Prompt, error) {
	items, err := chatItems(msgs, opts)
	if err != nil {
		return Prompt{}, err
	}
	var p Prompt
	var text strings.Builder
	flush := func() error {
		if text.Len() == 0 {
			return nil
		}
		ids, err := tok.Encode(text.String())
		if err != nil {
			return err
		}
		p.IDs = append(p.IDs, ids...)
		text.Reset()
		return nil
	}
	for _, it := range items {
		if it.special == "" {
			text.WriteString(it.text)
			continue
		}
		if err := flush(); err != nil {
			return Prompt{}, err
		}
		id, ok := tok.SpecialID(it.special)
		if !ok {
			return Prompt{}, fmt.Errorf("%w: the chat template needs %q, which the tokenizer lacks", ErrUnknownToken, it.special)
		}
		if it.n == 0 {
			p.IDs = append(p.IDs, id)
			continue
		}
		p.Spans = append(p.Spans, Span{Kind: it.kind, Start: len(p.IDs), Len: it.n})
		for range it.n {
			p.IDs = append(p.IDs, id)
		}
	}
	if err := flush(); err != nil {
		return Prompt{}, err
	}
	return p, nil
}

// AudioPlaceholderCount is the number of audio tokens Qwen2-Audio's and
// Qwen2.5-Omni's audio encoder makes from melFrames log-mel frames (its
// _get_feat_extract_output_lengths: a stride-2 convolution, then stride-2
// pooling): 3000 frames (30 s) give 750 tokens.
func AudioPlaceholderCount(melFrames int) int {
	if melFrames <= 0 {
		return 0
	}
	in := (melFrames-1)/2 + 1
	if in < 2 {
		return 0 // Python's floor division: (1-2)//2 + 1 == 0
	}
	return (in-2)/2 + 1
}
