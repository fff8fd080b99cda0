package graph

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/omniflow-go/omniflow/tensor"
)

// ValueKind is what a port carries.
type ValueKind uint8

const (
	AnyKind ValueKind = iota // matches every kind
	TensorKind
	TokensKind
	TextKind
	AudioKind
	ImageKind
	VideoKind
	HiddenKind // hidden states handed between model stages
)

var kindNames = [...]string{"any", "tensor", "tokens", "text", "audio", "image", "video", "hidden"}

func (k ValueKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Type is a port's type: the kind of value, its dtype (tensor.Invalid means
// any) and its dims. Dims are symbolic names ("B", "T", "D"), numbers
// ("64"), or "_" for a dimension that matches anything. A nil Dims matches
// any rank. Within one node a name means one size; Build unifies names
// across edges and rejects sizes that disagree.
type Type struct {
	Kind  ValueKind
	DType tensor.DType
	Dims  []string
}

// Any is a type that matches every other type.
func Any() Type { return Type{} }

// Tensor is a tensor of the given dtype and dims.
func Tensor(dt tensor.DType, dims ...string) Type {
	return Type{Kind: TensorKind, DType: dt, Dims: dimsOrNil(dims)}
}

// Tokens is a sequence of token ids.
func Tokens(dims ...string) Type { return Type{Kind: TokensKind, Dims: dimsOrNil(dims)} }

// Text is a string.
func Text() Type { return Type{Kind: TextKind} }

// Audio is PCM audio (dims typically "C","N").
func Audio(dims ...string) Type { return Type{Kind: AudioKind, Dims: dimsOrNil(dims)} }

// Image is an image (dims typically "H","W","C").
func Image(dims ...string) Type { return Type{Kind: ImageKind, Dims: dimsOrNil(dims)} }

// Video is a sequence of frames.
func Video(dims ...string) Type { return Type{Kind: VideoKind, Dims: dimsOrNil(dims)} }

// Hidden is a stage's hidden states (a tensor of the given dtype and dims).
func Hidden(dt tensor.DType, dims ...string) Type {
	return Type{Kind: HiddenKind, DType: dt, Dims: dimsOrNil(dims)}
}

func dimsOrNil(d []string) []string {
	if len(d) == 0 {
		return nil
	}
	return append([]string(nil), d...)
}

func (t Type) String() string {
	var b strings.Builder
	b.WriteString(t.Kind.String())
	if t.DType != tensor.Invalid {
		b.WriteString("<" + t.DType.String() + ">")
	}
	if t.Dims != nil {
		b.WriteString("[" + strings.Join(t.Dims, ",") + "]")
	}
	return b.String()
}

// Port is one named input or output of an operator.
type Port struct {
	Name string
	Type Type
	// Stream ports carry a sequence of chunks per request (tokens, codec
	// frames, audio) instead of one value.
	Stream bool
	// Optional inputs may be left unconnected.
	Optional bool
}

// In declares a value input.
func In(name string, t Type) Port { return Port{Name: name, Type: t} }

// Out declares a value output.
func Out(name string, t Type) Port { return Port{Name: name, Type: t} }

// StreamIn declares a stream input.
func StreamIn(name string, t Type) Port { return Port{Name: name, Type: t, Stream: true} }

// StreamOut declares a stream output.
func StreamOut(name string, t Type) Port { return Port{Name: name, Type: t, Stream: true} }

// Opt marks an input optional.
func (p Port) Opt() Port { p.Optional = true; return p }

func (p Port) String() string {
	s := p.Name + " " + p.Type.String()
	if p.Stream {
		s += " (stream)"
	}
	return s
}

// Contract is what an operator declares before it runs: its name and its
// typed ports. Build checks every edge against it.
type Contract struct {
	Name    string // the operator's kind, e.g. "vae_decode"
	Inputs  []Port
	Outputs []Port
	// Loop says that Run marks the iterations of a loop with profiler.Step
	// (a denoise loop, a decode loop). While a plan serves, its profiler
	// knows those stages iterate, so a profile of all stages with MaxIters
	// waits for each of them to record its window before it stops.
	Loop bool
}

// Operator is a graph node's behaviour. Run is called once per request, from
// the node's own goroutine; it reads inputs and writes outputs through io.
type Operator interface {
	Contract() Contract
	Run(ctx context.Context, io *IO) error
}

// Opener is implemented by operators that acquire resources once, before
// the first request (load weights, allocate caches).
type Opener interface {
	Open(ctx context.Context) error
}

// Closer is implemented by operators that release what Open acquired. Close
// is called only if Open succeeded (or the operator has no Open).
type Closer interface {
	Close() error
}

// OperatorFunc makes an Operator from a contract and a function.
func OperatorFunc(c Contract, run func(ctx context.Context, io *IO) error) Operator {
	return funcOp{c, run}
}

type funcOp struct {
	c   Contract
	run func(ctx context.Context, io *IO) error
}

func (f funcOp) Contract() Contract                    { return f.c }
func (f funcOp) Run(ctx context.Context, io *IO) error { return f.run(ctx, io) }

func (k ValueKind) compatible(o ValueKind) bool { return k == AnyKind || o == AnyKind || k == o }

func typeMismatch(out, in Type) string {
	if !out.Kind.compatible(in.Kind) {
		return fmt.Sprintf("kind %s does not match %s", out.Kind, in.Kind)
	}
	if out.DType != tensor.Invalid && in.DType != tensor.Invalid && out.DType != in.DType {
		return fmt.Sprintf("dtype %s does not match %s", out.DType, in.DType)
	}
	if out.Dims != nil && in.Dims != nil && len(out.Dims) != len(in.Dims) {
		return fmt.Sprintf("rank %d [%s] does not match rank %d [%s]", len(out.Dims), strings.Join(out.Dims, ","), len(in.Dims), strings.Join(in.Dims, ","))
	}
	return ""
}
