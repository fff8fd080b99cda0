package tokenize_test

import (
	"fmt"

	"github.com/omniflow-go/omniflow/operators/tokenize"
)

func ExampleEncodeChat() {
	tok, err := tokenize.NewByteTokenizer()
	if err != nil {
		panic(err)
	}
	melFrames := 300 // 3 s of audio
	p, err := tokenize.EncodeChat(tok, []tokenize.Message{{Role: "user", Parts: []tokenize.Part{
		tokenize.AudioPart(tokenize.AudioPlaceholderCount(melFrames)),
		tokenize.TextPart("Transcribe."),
	}}}, tokenize.ChatOptions{AddGenerationPrompt: true})
	if err != nil {
		panic(err)
	}
	s := p.Spans[0]
	fmt.Printf("%d ids; %v span of %d tokens at %d\n", len(p.IDs), s.Kind, s.Len, s.Start)
	// Output: 145 ids; audio span of 75 tokens at 45
}

func ExampleStreamDecoder() {
	tok, _ := tokenize.NewByteTokenizer()
	ids, _ := tok.Encode("añ世")
	dec := tokenize.NewStreamDecoder(tok)
	for _, id := range ids {
		text, _ := dec.Push(id)
		fmt.Printf("%q ", text)
	}
	fmt.Printf("%q\n", dec.Flush())
	// Output: "a" "" "ñ" "" "" "世" ""
}
