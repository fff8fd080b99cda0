package omni

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/operators/nn"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/tensor"
)

// vocoder is code2wav: a HiFi-GAN generator (Kong et al. 2020, "V1"
// structure: multi-receptive-field ResBlock1s) driven by codec token
// embeddings instead of a mel spectrogram. Weight names are under
// "code2wav": embed, conv_pre, ups.I, resblocks.J.convs{1,2}.K, conv_post.
//
// Every layer is causal: convolutions pad only on the left, and each
// upsampling ConvTranspose1d (kernel 2u, stride u) is cut to L·u samples,
// so output sample t depends on codec frames ≤ t/hop only, and on at most
// contextFrames of them before its own. Decoding a chunk with that many
// frames of left context therefore gives exactly the samples a decode of
// the whole sequence gives (up to float rounding): chunk boundaries cannot
// click. TestVocoderChunksMatchWhole checks it.
type vocoder struct {
	cfg      VocoderConfig
	embed    *nn.Embedding
	pre      *nn.Conv
	ups      []*nn.ConvTranspose1d
	res      [][]resBlock // [stage][kernel]
	post     *nn.Conv
	hop      int
	ctxFrame int
}

// resBlock is HiFi-GAN's ResBlock1: for each dilation d,
// x += conv2(lrelu(conv1_d(lrelu(x)))).
type resBlock struct {
	convs1, convs2 []*nn.Conv
}

// leakySlope is HiFi-GAN's LRELU_SLOPE; the last activation uses
// PyTorch's default 0.01, as HiFi-GAN does.
const leakySlope = 0.1

func causalConv(src nn.Source, name string, in, out, k, dil int) (*nn.Conv, error) {
	return nn.NewConv(src, name, nn.ConvConfig{In: in, Out: out, Kernel: []int{k}, Bias: true,
		Opt: device.ConvOptions{Dilation: []int{dil}, PadBegin: []int{(k - 1) * dil}, PadEnd: []int{0}}})
}

func newVocoder(src nn.Source, cfg VocoderConfig) (*vocoder, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	v := &vocoder{cfg: cfg, hop: cfg.HopLength()}
	p := "code2wav"
	var err error
	if v.embed, err = nn.NewEmbedding(src, nn.Join(p, "embed"), cfg.Codes, cfg.EmbedDim); err != nil {
		return nil, err
	}
	if v.pre, err = causalConv(src, nn.Join(p, "conv_pre"), cfg.EmbedDim, cfg.Channels, 7, 1); err != nil {
		return nil, err
	}
	ch := cfg.Channels
	for i, u := range cfg.Upsample {
		out := ch / 2
		up, err := nn.NewConvTranspose1d(src, nn.Join(p, "ups", strconv.Itoa(i)), ch, out, 2*u, true,
			device.ConvTranspose1dOptions{Stride: u})
		if err != nil {
			return nil, err
		}
		v.ups = append(v.ups, up)
		var blocks []resBlock
		for j, k := range cfg.ResKernels {
			name := nn.Join(p, "resblocks", strconv.Itoa(i*len(cfg.ResKernels)+j))
			var rb resBlock
			for di, d := range cfg.Dilations {
				c1, err := causalConv(src, nn.Join(name, "convs1", strconv.Itoa(di)), out, out, k, d)
				if err != nil {
					return nil, err
				}
				c2, err := causalConv(src, nn.Join(name, "convs2", strconv.Itoa(di)), out, out, k, 1)
				if err != nil {
					return nil, err
				}
				rb.convs1, rb.convs2 = append(rb.convs1, c1), append(rb.convs2, c2)
			}
			blocks = append(blocks, rb)
		}
		v.res = append(v.res, blocks)
		ch = out
	}
	if v.post, err = causalConv(src, nn.Join(p, "conv_post"), ch, 1, 7, 1); err != nil {
		return nil, err
	}
	v.ctxFrame = v.contextFrames()
	return v, nil
}

// contextFrames is the vocoder's receptive field into the past, in codec
// frames, rounded up: walking from the output back to the codes, each
// causal convolution of kernel k and dilation d looks (k−1)·d samples
// back, each ResBlock the sum over its dilations of (k−1)·d + (k−1), and
// each upsampling by u one input frame plus the position within it.
func (v *vocoder) contextFrames() int {
	hist := 6.0 // conv_post, at the output rate
	for i := len(v.cfg.Upsample) - 1; i >= 0; i-- {
		u := float64(v.cfg.Upsample[i])
		rf := 0
		for _, k := range v.cfg.ResKernels {
			r := 0
			for _, d := range v.cfg.Dilations {
				r += (k-1)*d + (k - 1)
			}
			rf = max(rf, r)
		}
		hist += float64(rf)
		// In the input frames of this upsampling: the sample's own frame
		// may be the one before (kernel 2u), and hist samples reach back
		// ceil(hist/u) frames more.
		hist = math.Ceil(hist/u) + 1
	}
	return int(hist) + 6 // conv_pre
}

// leakyReLU returns max(x, slope·x), elementwise (HiFi-GAN's activation;
// package device has no such kernel, so it runs here over the data).
func leakyReLU(ctx context.Context, x *tensor.Tensor, slope float32) (*tensor.Tensor, error) {
	_, span := profiler.Start(ctx, "LeakyReLU")
	defer span.End()
	c, err := x.Contiguous()
	if err != nil {
		return nil, err
	}
	defer c.Release()
	out, err := tensor.New(tensor.Float32, c.Shape())
	if err != nil {
		return nil, err
	}
	src, dst := c.Float32s(), out.Float32s()
	for i, s := range src {
		if s < 0 {
			s *= slope
		}
		dst[i] = s
	}
	return out, nil
}

// decode turns codes into PCM: hop samples per code.
func (v *vocoder) decode(ctx context.Context, codes []int32) ([]float32, error) {
	if len(codes) == 0 {
		return nil, nil
	}
	for i, c := range codes {
		if c < 0 || int(c) >= v.cfg.Codes {
			return nil, fmt.Errorf("omni: vocoder: code %d at frame %d outside [0, %d)", c, i, v.cfg.Codes)
		}
	}
	ids, err := tensor.FromInt32(codes, len(codes))
	if err != nil {
		return nil, err
	}
	e, err := v.embed.Forward(ctx, ids) // [L, E]
	if err != nil {
		return nil, err
	}
	et, err := e.Transpose(0, 1)
	e.Release()
	if err != nil {
		return nil, err
	}
	ec, err := et.Contiguous()
	et.Release()
	if err != nil {
		return nil, err
	}
	x, err := ec.Reshape(1, v.cfg.EmbedDim, len(codes))
	ec.Release()
	if err != nil {
		return nil, err
	}
	h, err := v.pre.Forward(ctx, x)
	x.Release()
	if err != nil {
		return nil, err
	}
	for i, up := range v.ups {
		if h, err = v.stage(ctx, i, up, h); err != nil {
			return nil, err
		}
	}
	a, err := leakyReLU(ctx, h, 0.01)
	h.Release()
	if err != nil {
		return nil, err
	}
	y, err := v.post.Forward(ctx, a)
	a.Release()
	if err != nil {
		return nil, err
	}
	defer y.Release()
	out := make([]float32, len(codes)*v.hop)
	for i, s := range y.Float32s()[:len(out)] {
		out[i] = float32(math.Tanh(float64(s)))
	}
	return out, nil
}

// stage runs upsampling i and its ResBlocks on h (which it releases).
func (v *vocoder) stage(ctx context.Context, i int, up *nn.ConvTranspose1d, h *tensor.Tensor) (*tensor.Tensor, error) {
	a, err := leakyReLU(ctx, h, leakySlope)
	h.Release()
	if err != nil {
		return nil, err
	}
	u, err := up.Forward(ctx, a)
	L := a.Dim(2)
	a.Release()
	if err != nil {
		return nil, err
	}
	// Causal cut: the first L·rate samples of the (L+1)·rate produced.
	cut, err := u.Slice(2, 0, L*v.cfg.Upsample[i])
	u.Release()
	if err != nil {
		return nil, err
	}
	x, err := cut.Contiguous()
	cut.Release()
	if err != nil {
		return nil, err
	}
	var sum *tensor.Tensor
	for j := range v.res[i] {
		r, err := v.res[i][j].forward(ctx, x)
		if err != nil {
			x.Release()
			if sum != nil {
				sum.Release()
			}
			return nil, err
		}
		if sum == nil {
			sum = r
			continue
		}
		s, err := device.Add(ctx, sum, r)
		sum.Release()
		r.Release()
		if err != nil {
			x.Release()
			return nil, err
		}
		sum = s
	}
	x.Release()
	out, err := device.Scale(ctx, sum, 1/float32(len(v.res[i])))
	sum.Release()
	return out, err
}

func (rb *resBlock) forward(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	x.Retain()
	for k := range rb.convs1 {
		a, err := leakyReLU(ctx, x, leakySlope)
		if err != nil {
			x.Release()
			return nil, err
		}
		c, err := rb.convs1[k].Forward(ctx, a)
		a.Release()
		if err != nil {
			x.Release()
			return nil, err
		}
		a, err = leakyReLU(ctx, c, leakySlope)
		c.Release()
		if err != nil {
			x.Release()
			return nil, err
		}
		c, err = rb.convs2[k].Forward(ctx, a)
		a.Release()
		if err != nil {
			x.Release()
			return nil, err
		}
		next, err := device.Add(ctx, c, x)
		c.Release()
		x.Release()
		if err != nil {
			return nil, err
		}
		x = next
	}
	return x, nil
}

// decodeChunk decodes codes[start:end] of a sequence, with up to
// contextFrames codes before start as left context, and returns the
// chunk's (end−start)·hop samples.
func (v *vocoder) decodeChunk(ctx context.Context, codes []int32, start, end int) ([]float32, error) {
	from := max(0, start-v.ctxFrame)
	pcm, err := v.decode(ctx, codes[from:end])
	if err != nil {
		return nil, err
	}
	return pcm[(start-from)*v.hop:], nil
}
