package omni_test

import (
	"context"
	"fmt"
	"io"

	"github.com/omniflow-go/omniflow/omni"
	"github.com/omniflow-go/omniflow/profiler"
)

// A batch of prompts: text and speech for each, in order.
func ExampleEngine_Generate() {
	ctx := context.Background()
	p, _ := profiler.New() // records nothing unless started
	e, err := omni.New(ctx, omni.Config{Profiler: p})
	if err != nil {
		panic(err)
	}
	defer e.Close(ctx)
	params := omni.SamplingParams{MaxTokens: 8, IgnoreEOS: true}
	res, err := e.Generate(ctx, []omni.Prompt{{Text: "Hello!"}, {Text: "How are you?"}}, params)
	if err != nil {
		panic(err)
	}
	for _, r := range res {
		fmt.Printf("%s: %d tokens (%s), %d codec tokens, %v of audio at %d Hz\n",
			r.ID, len(r.TokenIDs), r.FinishReason, len(r.CodecTokens), r.AudioDuration(), r.SampleRate)
	}
	// Output:
	// req-1: 8 tokens (length), 20 codec tokens, 400ms of audio at 24000 Hz
	// req-2: 8 tokens (length), 20 codec tokens, 400ms of audio at 24000 Hz
}

// One request's text and audio as they come, with streaming hand-off.
func ExampleEngine_Stream() {
	ctx := context.Background()
	p, _ := profiler.New()
	e, err := omni.New(ctx, omni.Config{Profiler: p, Streaming: true, ChunkFrames: 10})
	if err != nil {
		panic(err)
	}
	defer e.Close(ctx)
	st, err := e.Stream(ctx, omni.Prompt{Text: "Tell me something."}, omni.SamplingParams{MaxTokens: 12, IgnoreEOS: true})
	if err != nil {
		panic(err)
	}
	tokens, chunks := 0, 0
	for {
		c, err := st.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err)
		}
		tokens += len(c.TokenIDs)
		if len(c.Audio) > 0 {
			chunks++
		}
	}
	fmt.Printf("%d text tokens, %d audio chunks\n", tokens, chunks)
	// Output:
	// 12 text tokens, 3 audio chunks
}

// Profiling stages 0 and 2 (thinker and vocoder) around a request.
func ExampleEngine_StartProfile() {
	ctx := context.Background()
	p, _ := profiler.New() // add profiler.WithDir and a sink to write files
	e, _ := omni.New(ctx, omni.Config{Profiler: p})
	defer e.Close(ctx)
	if err := e.StartProfile(ctx, 0, 2); err != nil {
		panic(err)
	}
	if _, err := e.Generate(ctx, []omni.Prompt{{Text: "profiled"}}, omni.SamplingParams{MaxTokens: 4}); err != nil {
		panic(err)
	}
	res, err := e.StopProfile(ctx)
	if err != nil {
		panic(err)
	}
	for _, s := range res.Stages {
		fmt.Printf("stage %d (%s): selected %v\n", s.ID, s.Name, s.Selected)
	}
	// Output:
	// stage 0 (thinker): selected true
	// stage 2 (vocoder): selected true
}
