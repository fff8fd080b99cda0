package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Errors for errors.Is; the messages say which chunk or field was wrong.
var (
	// ErrNotWAV is input that is not a RIFF/WAVE file.
	ErrNotWAV = errors.New("audio: not a RIFF/WAVE file")
	// ErrTruncated is a file that ends inside a header or chunk.
	ErrTruncated = errors.New("audio: truncated WAV file")
	// ErrUnsupported is a valid WAV encoding this package does not read.
	ErrUnsupported = errors.New("audio: unsupported WAV encoding")
	// ErrInvalid is a header with inconsistent or absurd fields.
	ErrInvalid = errors.New("audio: invalid WAV header")
	// ErrTooLarge is data beyond the reader's limit.
	ErrTooLarge = errors.New("audio: WAV data exceeds the limit")
)

// Encoding is a WAV sample encoding.
type Encoding int

const (
	// PCM8 is unsigned 8-bit PCM (read only).
	PCM8 Encoding = iota + 1
	// PCM16 is signed 16-bit PCM.
	PCM16
	// PCM24 is signed 24-bit PCM (read only).
	PCM24
	// PCM32 is signed 32-bit PCM (read only).
	PCM32
	// Float32 is 32-bit IEEE float.
	Float32
	// Float64 is 64-bit IEEE float (read only).
	Float64
)

func (e Encoding) String() string {
	switch e {
	case PCM8:
		return "pcm8"
	case PCM16:
		return "pcm16"
	case PCM24:
		return "pcm24"
	case PCM32:
		return "pcm32"
	case Float32:
		return "float32"
	case Float64:
		return "float64"
	}
	return fmt.Sprintf("Encoding(%d)", int(e))
}

func (e Encoding) bytesPerSample() int {
	switch e {
	case PCM8:
		return 1
	case PCM16:
		return 2
	case PCM24:
		return 3
	case PCM32, Float32:
		return 4
	case Float64:
		return 8
	}
	return 0
}

// WAVInfo describes a WAV file as stored.
type WAVInfo struct {
	SampleRate int
	Channels   int
	Encoding   Encoding
	Frames     int // sample frames (samples per channel)
}

// Limits on what ReadWAV accepts.
const (
	MaxChannels   = 64
	MaxSampleRate = 1 << 20 // Hz
	// DefaultMaxDataBytes is ReadWAV's default limit on the data chunk.
	DefaultMaxDataBytes = 1 << 30
	maxFmtBytes         = 1 << 12
)

// ReadOption configures ReadWAV.
type ReadOption func(*readConfig)

type readConfig struct{ maxData int64 }

// WithMaxDataBytes sets the largest data chunk ReadWAV reads (default
// DefaultMaxDataBytes).
func WithMaxDataBytes(n int64) ReadOption { return func(c *readConfig) { c.maxData = n } }

// ReadWAV decodes a RIFF/WAVE file to mono float32 samples in [-1, 1]
// (channels are averaged). It reads PCM 8 (unsigned), 16, 24 and 32-bit
// integer and 32/64-bit float, as WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT
// or WAVE_FORMAT_EXTENSIBLE, at any sample rate; integers scale by
// 2^-(bits-1). Chunks other than "fmt " and "data" are skipped; reading
// stops after the data chunk. A data size of 0xFFFFFFFF (a writer that
// streamed) means "to the end of the input".
//
// Memory follows the bytes actually read, never a header's claim: sizes
// are checked against the limit and the data is decoded in fixed-size
// blocks.
func ReadWAV(r io.Reader, opts ...ReadOption) ([]float32, WAVInfo, error) {
	c := readConfig{maxData: DefaultMaxDataBytes}
	for _, o := range opts {
		o(&c)
	}
	var hdr [12]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, WAVInfo{}, readErr(err, "RIFF header")
	}
	switch {
	case string(hdr[0:4]) == "RIFX" || string(hdr[0:4]) == "RF64":
		return nil, WAVInfo{}, fmt.Errorf("%w: %q container (big-endian or 64-bit RIFF)", ErrUnsupported, hdr[0:4])
	case string(hdr[0:4]) != "RIFF":
		return nil, WAVInfo{}, fmt.Errorf("%w: starts with %q, want \"RIFF\"", ErrNotWAV, hdr[0:4])
	case string(hdr[8:12]) != "WAVE":
		return nil, WAVInfo{}, fmt.Errorf("%w: RIFF form %q, want \"WAVE\"", ErrNotWAV, hdr[8:12])
	}
	var info WAVInfo
	var blockAlign int
	haveFmt := false
	for {
		var ch [8]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			if err == io.EOF {
				if !haveFmt {
					return nil, WAVInfo{}, fmt.Errorf("%w: no \"fmt \" chunk", ErrInvalid)
				}
				return nil, WAVInfo{}, fmt.Errorf("%w: no \"data\" chunk", ErrInvalid)
			}
			return nil, WAVInfo{}, readErr(err, "chunk header")
		}
		id, size := string(ch[0:4]), binary.LittleEndian.Uint32(ch[4:8])
		switch id {
		case "fmt ":
			if haveFmt {
				return nil, WAVInfo{}, fmt.Errorf("%w: a second \"fmt \" chunk", ErrInvalid)
			}
			if size < 16 || size > maxFmtBytes {
				return nil, WAVInfo{}, fmt.Errorf("%w: \"fmt \" chunk of %d bytes, want 16..%d", ErrInvalid, size, maxFmtBytes)
			}
			buf := make([]byte, size+size&1)
			if _, err := io.ReadFull(r, buf[:size]); err != nil {
				return nil, WAVInfo{}, readErr(err, "\"fmt \" chunk")
			}
			if size&1 == 1 {
				if err := skipPad(r); err != nil {
					return nil, WAVInfo{}, err
				}
			}
			var err error
			if info, blockAlign, err = parseFmt(buf[:size]); err != nil {
				return nil, WAVInfo{}, err
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return nil, WAVInfo{}, fmt.Errorf("%w: \"data\" chunk before the \"fmt \" chunk", ErrInvalid)
			}
			n := int64(size)
			streamed := size == math.MaxUint32
			if !streamed {
				if n%int64(blockAlign) != 0 {
					return nil, WAVInfo{}, fmt.Errorf("%w: data chunk of %d bytes is not a whole number of %d-byte frames", ErrInvalid, n, blockAlign)
				}
				if n > c.maxData {
					return nil, WAVInfo{}, fmt.Errorf("%w: data chunk of %d bytes, limit %d", ErrTooLarge, n, c.maxData)
				}
			}
			samples, err := readData(r, n, streamed, c.maxData, info, blockAlign)
			if err != nil {
				return nil, WAVInfo{}, err
			}
			info.Frames = len(samples)
			return samples, info, nil
		default:
			skip := int64(size) + int64(size&1)
			if m, err := io.CopyN(io.Discard, r, skip); err != nil {
				if err == io.EOF && m == skip-1 && size&1 == 1 {
					continue // a missing final pad byte
				}
				return nil, WAVInfo{}, fmt.Errorf("%w: %q chunk declares %d bytes, only %d follow", ErrTruncated, id, size, m)
			}
		}
	}
}

func readErr(err error, what string) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: file ends inside the %s", ErrTruncated, what)
	}
	return fmt.Errorf("audio: reading the %s: %w", what, err)
}

func skipPad(r io.Reader) error {
	var b [1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil && err != io.EOF {
		return readErr(err, "pad byte")
	}
	return nil
}

const (
	formatPCM        = 1
	formatIEEEFloat  = 3
	formatExtensible = 0xFFFE
)

// ksdataformatGUIDTail is the common tail of the KSDATAFORMAT_SUBTYPE
// GUIDs; their first two bytes are the format code.
var ksdataformatGUIDTail = []byte{0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71}

func parseFmt(b []byte) (WAVInfo, int, error) {
	le := binary.LittleEndian
	format := int(le.Uint16(b[0:2]))
	channels := int(le.Uint16(b[2:4]))
	rate := int(le.Uint32(b[4:8]))
	blockAlign := int(le.Uint16(b[12:14]))
	bits := int(le.Uint16(b[14:16]))
	if format == formatExtensible {
		if len(b) < 40 {
			return WAVInfo{}, 0, fmt.Errorf("%w: WAVE_FORMAT_EXTENSIBLE \"fmt \" chunk of %d bytes, want 40", ErrInvalid, len(b))
		}
		if !bytes.Equal(b[26:40], ksdataformatGUIDTail) {
			return WAVInfo{}, 0, fmt.Errorf("%w: WAVE_FORMAT_EXTENSIBLE with an unknown sub-format GUID", ErrUnsupported)
		}
		format = int(le.Uint16(b[24:26]))
		if valid := int(le.Uint16(b[18:20])); valid > bits {
			return WAVInfo{}, 0, fmt.Errorf("%w: %d valid bits in a %d-bit container", ErrInvalid, valid, bits)
		}
	}
	var enc Encoding
	switch {
	case format == formatPCM && bits == 8:
		enc = PCM8
	case format == formatPCM && bits == 16:
		enc = PCM16
	case format == formatPCM && bits == 24:
		enc = PCM24
	case format == formatPCM && bits == 32:
		enc = PCM32
	case format == formatIEEEFloat && bits == 32:
		enc = Float32
	case format == formatIEEEFloat && bits == 64:
		enc = Float64
	case format == formatPCM || format == formatIEEEFloat:
		return WAVInfo{}, 0, fmt.Errorf("%w: %d-bit samples in format %d", ErrUnsupported, bits, format)
	default:
		return WAVInfo{}, 0, fmt.Errorf("%w: format code 0x%04x (only PCM and IEEE float)", ErrUnsupported, format)
	}
	switch {
	case channels < 1 || channels > MaxChannels:
		return WAVInfo{}, 0, fmt.Errorf("%w: %d channels, want 1..%d", ErrInvalid, channels, MaxChannels)
	case rate < 1 || rate > MaxSampleRate:
		return WAVInfo{}, 0, fmt.Errorf("%w: sample rate %d Hz, want 1..%d", ErrInvalid, rate, MaxSampleRate)
	case blockAlign != channels*enc.bytesPerSample():
		return WAVInfo{}, 0, fmt.Errorf("%w: block align %d, want %d channels × %d bytes", ErrInvalid, blockAlign, channels, enc.bytesPerSample())
	}
	return WAVInfo{SampleRate: rate, Channels: channels, Encoding: enc}, blockAlign, nil
}

// readData decodes n bytes of frames (to EOF if streamed) into mono
// samples, a block at a time.
func readData(r io.Reader, n int64, streamed bool, limit int64, info WAVInfo, blockAlign int) ([]float32, error) {
	block := make([]byte, max(1, 64<<10/blockAlign)*blockAlign)
	var out []float32
	if !streamed {
		out = make([]float32, 0, min(n, int64(len(block)*16))/int64(blockAlign))
	}
	var read int64
	for streamed || read < n {
		want := int64(len(block))
		if !streamed {
			want = min(want, n-read)
		}
		m, err := io.ReadFull(r, block[:want])
		if streamed {
			m -= m % blockAlign // drop a partial frame at the end of a stream
		}
		read += int64(m)
		if streamed && read > limit {
			return nil, fmt.Errorf("%w: streamed data beyond %d bytes", ErrTooLarge, limit)
		}
		out = appendMono(out, block[:m], info.Channels, info.Encoding)
		if err != nil {
			if streamed && (err == io.EOF || err == io.ErrUnexpectedEOF) {
				return out, nil
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return nil, fmt.Errorf("%w: data chunk declares %d bytes, only %d follow", ErrTruncated, n, read)
			}
			return nil, fmt.Errorf("audio: reading WAV data: %w", err)
		}
	}
	return out, nil
}

// appendMono decodes whole frames of b and appends their channel mean.
func appendMono(dst []float32, b []byte, channels int, enc Encoding) []float32 {
	bps := enc.bytesPerSample()
	frame := bps * channels
	inv := 1 / float32(channels)
	le := binary.LittleEndian
	for off := 0; off+frame <= len(b); off += frame {
		var sum float32
		for c := range channels {
			p := b[off+c*bps:]
			var v float32
			switch enc {
			case PCM8:
				v = (float32(p[0]) - 128) / 128
			case PCM16:
				v = float32(int16(le.Uint16(p))) / (1 << 15)
			case PCM24:
				x := int32(uint32(p[0])<<8|uint32(p[1])<<16|uint32(p[2])<<24) >> 8
				v = float32(x) / (1 << 23)
			case PCM32:
				v = float32(float64(int32(le.Uint32(p))) / (1 << 31))
			case Float32:
				v = math.Float32frombits(le.Uint32(p))
			case Float64:
				v = float32(math.Float64frombits(le.Uint64(p)))
			}
			sum += v
		}
		if channels == 1 {
			dst = append(dst, sum)
		} else {
			dst = append(dst, sum*inv)
		}
	}
	return dst
}

// WriteWAV writes mono samples as a RIFF/WAVE file at rate Hz, encoded as
// PCM16 (WAVE_FORMAT_PCM; samples scaled by 32768, rounded and clipped to
// [-32768, 32767], NaN as 0 — the inverse of ReadWAV's scaling) or Float32
// (WAVE_FORMAT_IEEE_FLOAT with an 18-byte fmt chunk and the fact chunk the
// format requires; samples as they are).
func WriteWAV(w io.Writer, samples []float32, rate int, enc Encoding) error {
	if rate < 1 || rate > MaxSampleRate {
		return fmt.Errorf("%w: sample rate %d Hz, want 1..%d", ErrInvalid, rate, MaxSampleRate)
	}
	var fmtChunk []byte
	le := binary.LittleEndian
	bps := enc.bytesPerSample()
	switch enc {
	case PCM16:
		fmtChunk = make([]byte, 16)
		le.PutUint16(fmtChunk[0:], formatPCM)
	case Float32:
		fmtChunk = make([]byte, 18) // cbSize = 0
		le.PutUint16(fmtChunk[0:], formatIEEEFloat)
	default:
		return fmt.Errorf("%w: WriteWAV writes pcm16 or float32, not %v", ErrUnsupported, enc)
	}
	le.PutUint16(fmtChunk[2:], 1)
	le.PutUint32(fmtChunk[4:], uint32(rate))
	le.PutUint32(fmtChunk[8:], uint32(rate*bps))
	le.PutUint16(fmtChunk[12:], uint16(bps))
	le.PutUint16(fmtChunk[14:], uint16(8*bps))

	dataBytes := int64(len(samples)) * int64(bps)
	riffSize := 4 + 8 + int64(len(fmtChunk)) + 8 + dataBytes
	if enc == Float32 {
		riffSize += 12 // fact chunk
	}
	if riffSize > math.MaxUint32 {
		return fmt.Errorf("%w: %d samples do not fit a RIFF file", ErrTooLarge, len(samples))
	}
	hdr := make([]byte, 0, 64)
	hdr = append(hdr, "RIFF"...)
	hdr = le.AppendUint32(hdr, uint32(riffSize))
	hdr = append(hdr, "WAVEfmt "...)
	hdr = le.AppendUint32(hdr, uint32(len(fmtChunk)))
	hdr = append(hdr, fmtChunk...)
	if enc == Float32 {
		hdr = append(hdr, "fact"...)
		hdr = le.AppendUint32(hdr, 4)
		hdr = le.AppendUint32(hdr, uint32(len(samples)))
	}
	hdr = append(hdr, "data"...)
	hdr = le.AppendUint32(hdr, uint32(dataBytes))
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	buf := make([]byte, 0, 64<<10)
	for i, s := range samples {
		if enc == PCM16 {
			buf = le.AppendUint16(buf, uint16(quantize16(s)))
		} else {
			buf = le.AppendUint32(buf, math.Float32bits(s))
		}
		if len(buf) == cap(buf) || i == len(samples)-1 {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	return nil
}

// AppendPCM16 appends samples to b as signed 16-bit little-endian PCM,
// quantized as WriteWAV's PCM16 does: the data of such a WAV file.
func AppendPCM16(b []byte, samples []float32) []byte {
	for _, s := range samples {
		b = binary.LittleEndian.AppendUint16(b, uint16(quantize16(s)))
	}
	return b
}

func quantize16(s float32) int16 {
	v := math.Round(float64(s) * (1 << 15))
	switch {
	case v != v: // NaN
		return 0
	case v > math.MaxInt16:
		return math.MaxInt16
	case v < math.MinInt16:
		return math.MinInt16
	}
	return int16(v)
}
