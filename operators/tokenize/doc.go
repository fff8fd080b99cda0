// Package tokenize turns text into token ids and back for the model
// stages: the thinker's prompt in, its streamed tokens out.
//
// Two tokenizers implement Tokenizer:
//
//   - ByteTokenizer, the default, needs no files: ids 0..255 are the UTF-8
//     bytes, then named special tokens (<|endoftext|>, <|im_start|>,
//     <|im_end|>, <|audio_bos|>, <|AUDIO|>, ... <pad>; configurable).
//   - BPE is a Hugging Face tokenizer.json byte-level BPE (GPT-2, Qwen2,
//     Llama 3): added tokens, normalizer, the ByteLevel pre-tokenizer with
//     GPT-2's or Qwen2's split (implemented by hand: Go's regexp has no
//     lookahead), merges by rank with a word cache, and decoding back
//     through GPT-2's byte-to-unicode table.
//
// Decode always returns valid UTF-8 (bytes that start no valid sequence
// become U+FFFD); StreamDecoder emits text as tokens arrive one at a time,
// only once each character is complete. EncodeChat lays out the
// Qwen2.5-Omni chat prompt with audio and image placeholder spans and says
// where the spans are, for the thinker to put the encoders' embeddings in.
//
//	tok, _ := tokenize.NewByteTokenizer()
//	p, _ := tokenize.EncodeChat(tok, []tokenize.Message{{Role: "user", Parts: []tokenize.Part{
//		tokenize.AudioPart(tokenize.AudioPlaceholderCount(melFrames)),
//		tokenize.TextPart("What is said here?"),
//	}}}, tokenize.ChatOptions{AddGenerationPrompt: true})
//	// p.IDs go to the thinker; p.Spans[0] is where the audio embeddings go.
//
//	dec := tokenize.NewStreamDecoder(tok)
//	for id := range generated { text, _ := dec.Push(id); emit(text) }
//	emit(dec.Flush())
package tokenize
