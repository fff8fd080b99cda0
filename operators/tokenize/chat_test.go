package tokenize

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestRenderChat(t *testing.T) {
	msgs := []Message{{Role: "user", Parts: []Part{
		AudioPart(3), TextPart("What is said? "), ImagePart(2), VideoPart(1),
	}}}
	got, err := RenderChat(msgs, ChatOptions{AddGenerationPrompt: true})
	if err != nil {
		t.Fatal(err)
	}
	want := "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" +
		"<|im_start|>user\n<|audio_bos|><|AUDIO|><|AUDIO|><|AUDIO|><|audio_eos|>What is said? " +
		"<|vision_bos|><|IMAGE|><|IMAGE|><|vision_eos|><|vision_bos|><|VIDEO|><|vision_eos|><|im_end|>\n" +
		"<|im_start|>assistant\n"
	if got != want {
		t.Errorf("RenderChat =\n%q\nwant\n%q", got, want)
	}

	// An explicit system message replaces the default; no generation prompt.
	got, err = RenderChat([]Message{
		{Role: "system", Parts: []Part{TextPart(QwenOmniSystemPrompt)}},
		{Role: "user", Parts: []Part{TextPart("hi")}},
		{Role: "assistant", Parts: []Part{TextPart("hello")}},
	}, ChatOptions{System: "ignored"})
	if err != nil {
		t.Fatal(err)
	}
	want = "<|im_start|>system\n" + QwenOmniSystemPrompt + "<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n"
	if got != want {
		t.Errorf("RenderChat =\n%q\nwant\n%q", got, want)
	}
	got, _ = RenderChat(nil, ChatOptions{System: "S", AddGenerationPrompt: true})
	if want := "<|im_start|>system\nS<|im_end|>\n<|im_start|>assistant\n"; got != want {
		t.Errorf("RenderChat(nil) = %q", got)
	}
}

func TestEncodeChat(t *testing.T) {
	byteTok, err := NewByteTokenizer()
	if err != nil {
		t.Fatal(err)
	}
	bpe := toyBPE(t, toyOptions{})
	msgs := []Message{{Role: "user", Parts: []Part{
		TextPart("hello "), AudioPart(4), TextPart("world"), ImagePart(3),
	}}}
	opts := ChatOptions{System: QwenOmniSystemPrompt, AddGenerationPrompt: true}
	for _, tok := range []Tokenizer{byteTok, bpe} {
		p, err := EncodeChat(tok, msgs, opts)
		if err != nil {
			t.Fatal(err)
		}
		text, _ := RenderChat(msgs, opts)
		want, _ := tok.Encode(text)
		if !slices.Equal(p.IDs, want) {
			t.Errorf("%T: EncodeChat ids differ from Encode(RenderChat)", tok)
		}
		if len(p.Spans) != 2 || p.Spans[0].Kind != AudioKind || p.Spans[0].Len != 4 || p.Spans[1].Kind != ImageKind || p.Spans[1].Len != 3 {
			t.Fatalf("%T: spans = %+v", tok, p.Spans)
		}
		audio, _ := tok.SpecialID("<|AUDIO|>")
		image, _ := tok.SpecialID("<|IMAGE|>")
		bos, _ := tok.SpecialID("<|audio_bos|>")
		for i, s := range p.Spans {
			pad := []int32{audio, image}[i]
			for j := s.Start; j < s.Start+s.Len; j++ {
				if p.IDs[j] != pad {
					t.Errorf("%T: span %d: id %d at %d, want %d", tok, i, p.IDs[j], j, pad)
				}
			}
		}
		if p.IDs[p.Spans[0].Start-1] != bos {
			t.Errorf("%T: the audio span does not follow <|audio_bos|>", tok)
		}
		back, _ := tok.Decode(p.IDs)
		if back != text {
			t.Errorf("%T: Decode = %q", tok, back)
		}
	}
}

func TestEncodeChatErrors(t *testing.T) {
	tok, _ := NewByteTokenizer(WithSpecialTokens("<|im_start|>", "<|im_end|>"))
	if _, err := EncodeChat(tok, []Message{{Role: "user", Parts: []Part{AudioPart(2)}}}, ChatOptions{}); !errors.Is(err, ErrUnknownToken) || !strings.Contains(err.Error(), "<|audio_bos|>") {
		t.Errorf("missing special: %v", err)
	}
	full, _ := NewByteTokenizer()
	for _, msgs := range [][]Message{
		{{Role: "", Parts: []Part{TextPart("x")}}},
		{{Role: "a\nb"}},
		{{Role: "user", Parts: []Part{AudioPart(0)}}},
		{{Role: "user", Parts: []Part{ImagePart(-1)}}},
		{{Role: "user", Parts: []Part{ImagePart(MaxPlaceholderTokens + 1)}}},
		{{Role: "user", Parts: []Part{{Kind: PartKind(9), Tokens: 1}}}},
	} {
		if _, err := EncodeChat(full, msgs, ChatOptions{}); err == nil {
			t.Errorf("EncodeChat(%+v) succeeded", msgs)
		}
	}
}

func TestAudioPlaceholderCount(t *testing.T) {
	// Qwen2.5-Omni's _get_feat_extract_output_lengths, by hand:
	// in = (f-1)//2 + 1; out = (in-2)//2 + 1.
	for frames, want := range map[int]int{0: 0, 1: 0, 2: 0, 3: 1, 4: 1, 5: 1, 6: 1, 7: 2, 100: 25, 101: 25, 3000: 750, 3001: 750, 3003: 751} {
		if got := AudioPlaceholderCount(frames); got != want {
			t.Errorf("AudioPlaceholderCount(%d) = %d, want %d", frames, got, want)
		}
	}
}
