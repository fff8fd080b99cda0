// Package vision is the image and video front end and back end of the
// model stages: images in for the thinker's vision encoder (Qwen2-VL /
// Qwen2.5-Omni preprocessing) and images and videos out of the diffusion
// pipelines.
//
// In: Load decodes PNG or JPEG; ToTensor gives RGB float32 [3, H, W] in
// [0, 1]; SmartResize picks Qwen2-VL's size (multiples of 28, pixel
// bounds, aspect kept); Resize resamples (PIL-style bicubic or bilinear,
// antialiased when shrinking); Normalize applies CLIP's mean and std; and
// Patchify cuts [T, C, H, W] into Qwen2-VL's [patches, C·2·14·14] rows in
// its 2×2 merge order. Preprocess does all of it:
//
//	img, err := vision.LoadFile("cat.jpg")
//	p, err := vision.Preprocess(vision.DefaultProcessorConfig(), img)
//	// p.Data: [p.GridT·p.GridH·p.GridW, 1176]; p.NumTokens() <|IMAGE|> tokens
//
// Out: WritePNG writes an image tensor, WriteGIF a video tensor as an
// animated GIF (one median-cut or Plan 9 palette, Floyd–Steinberg
// dithering), WritePNGFrames one PNG per frame. Tensors are [3,H,W] or
// [H,W,3] (ImageOptions.Layout), with values in [0, 1] or [−1, 1]
// (ImageOptions.Range).
package vision
