package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"runtime"
	"strings"
	"testing"
)

// chunk is a RIFF chunk for building test files.
type chunk struct {
	id   string
	data []byte
	size *uint32 // declared size; nil: len(data)
}

func fmtChunk(format, channels, rate, bits int) chunk {
	b := make([]byte, 16)
	le := binary.LittleEndian
	le.PutUint16(b[0:], uint16(format))
	le.PutUint16(b[2:], uint16(channels))
	le.PutUint32(b[4:], uint32(rate))
	le.PutUint32(b[8:], uint32(rate*channels*bits/8))
	le.PutUint16(b[12:], uint16(channels*bits/8))
	le.PutUint16(b[14:], uint16(bits))
	return chunk{id: "fmt ", data: b}
}

// extensibleFmt is WAVE_FORMAT_EXTENSIBLE with sub-format sub.
func extensibleFmt(sub, channels, rate, bits int, guidTail []byte) chunk {
	c := fmtChunk(formatExtensible, channels, rate, bits)
	b := append(c.data, make([]byte, 24)...)
	le := binary.LittleEndian
	le.PutUint16(b[16:], 22)
	le.PutUint16(b[18:], uint16(bits))
	le.PutUint32(b[20:], 0x3)
	le.PutUint16(b[24:], uint16(sub))
	copy(b[26:], guidTail)
	return chunk{id: "fmt ", data: b}
}

func riff(chunks ...chunk) []byte {
	var body []byte
	body = append(body, "WAVE"...)
	for _, c := range chunks {
		body = append(body, c.id...)
		size := uint32(len(c.data))
		if c.size != nil {
			size = *c.size
		}
		body = binary.LittleEndian.AppendUint32(body, size)
		body = append(body, c.data...)
		if len(c.data)%2 == 1 && c.size == nil {
			body = append(body, 0)
		}
	}
	out := append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...)
	return append(out, body...)
}

func size32(n uint32) *uint32 { return &n }

func TestWAVRoundTrip(t *testing.T) {
	// Values on the 16-bit grid survive PCM16 exactly; any float survives
	// Float32 exactly.
	samples := make([]float32, 1001)
	for i := range samples {
		samples[i] = float32(int16(i*97%65536-32768)) / 32768
	}
	samples[3] = -1
	for _, enc := range []Encoding{PCM16, Float32} {
		t.Run(enc.String(), func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteWAV(&buf, samples, 24000, enc); err != nil {
				t.Fatal(err)
			}
			got, info, err := ReadWAV(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if info != (WAVInfo{SampleRate: 24000, Channels: 1, Encoding: enc, Frames: len(samples)}) {
				t.Errorf("info = %+v", info)
			}
			for i := range samples {
				if got[i] != samples[i] {
					t.Fatalf("sample %d = %v, want %v", i, got[i], samples[i])
				}
			}
		})
	}
}

func TestWriteWAVHeader(t *testing.T) {
	le := binary.LittleEndian
	samples := make([]float32, 1000)
	var buf bytes.Buffer
	if err := WriteWAV(&buf, samples, 22050, PCM16); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if len(b) != 44+2000 {
		t.Fatalf("PCM16 file is %d bytes, want 2044", len(b))
	}
	check := func(what string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check("RIFF", string(b[0:4]), "RIFF")
	check("RIFF size", le.Uint32(b[4:]), uint32(2036))
	check("form", string(b[8:16]), "WAVEfmt ")
	check("fmt size", le.Uint32(b[16:]), uint32(16))
	check("format", le.Uint16(b[20:]), uint16(1))
	check("channels", le.Uint16(b[22:]), uint16(1))
	check("rate", le.Uint32(b[24:]), uint32(22050))
	check("byte rate", le.Uint32(b[28:]), uint32(44100))
	check("block align", le.Uint16(b[32:]), uint16(2))
	check("bits", le.Uint16(b[34:]), uint16(16))
	check("data", string(b[36:40]), "data")
	check("data size", le.Uint32(b[40:]), uint32(2000))

	buf.Reset()
	if err := WriteWAV(&buf, samples, 48000, Float32); err != nil {
		t.Fatal(err)
	}
	b = buf.Bytes()
	if len(b) != 58+4000 {
		t.Fatalf("Float32 file is %d bytes, want 4058", len(b))
	}
	check("RIFF size", le.Uint32(b[4:]), uint32(4050))
	check("fmt size", le.Uint32(b[16:]), uint32(18))
	check("format", le.Uint16(b[20:]), uint16(3))
	check("channels", le.Uint16(b[22:]), uint16(1))
	check("rate", le.Uint32(b[24:]), uint32(48000))
	check("byte rate", le.Uint32(b[28:]), uint32(192000))
	check("block align", le.Uint16(b[32:]), uint16(4))
	check("bits", le.Uint16(b[34:]), uint16(32))
	check("cbSize", le.Uint16(b[36:]), uint16(0))
	check("fact", string(b[38:42]), "fact")
	check("fact size", le.Uint32(b[42:]), uint32(4))
	check("fact frames", le.Uint32(b[46:]), uint32(1000))
	check("data", string(b[50:54]), "data")
	check("data size", le.Uint32(b[54:]), uint32(4000))
}

func TestWriteWAVQuantize(t *testing.T) {
	var buf bytes.Buffer
	in := []float32{1.5, -2, float32(math.NaN()), 0.5, 1, -1, 1.0 / 65536}
	if err := WriteWAV(&buf, in, 8000, PCM16); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()[44:]
	want := []int16{32767, -32768, 0, 16384, 32767, -32768, 1} // 0.5 LSB rounds away from zero
	for i, w := range want {
		if got := int16(binary.LittleEndian.Uint16(data[2*i:])); got != w {
			t.Errorf("sample %d (%v) = %d, want %d", i, in[i], got, w)
		}
	}
	if err := WriteWAV(&buf, in, 0, PCM16); !errors.Is(err, ErrInvalid) {
		t.Errorf("rate 0: %v", err)
	}
	if err := WriteWAV(&buf, in, 8000, PCM24); !errors.Is(err, ErrUnsupported) {
		t.Errorf("PCM24: %v", err)
	}
}

func TestReadWAVEncodings(t *testing.T) {
	le := binary.LittleEndian
	// Two stereo frames per case: (a, b) then (c, d); mono is their mean.
	pcm24 := func(v int32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16)} }
	var b24 []byte
	for _, v := range []int32{1 << 22, -(1 << 22), -(1 << 23), 0} {
		b24 = append(b24, pcm24(v)...)
	}
	var b32 []byte
	for _, v := range []int32{1 << 30, 1 << 29, math.MinInt32, math.MinInt32} {
		b32 = le.AppendUint32(b32, uint32(v))
	}
	var f32 []byte
	for _, v := range []float32{0.25, 0.75, -0.5, 0.5} {
		f32 = le.AppendUint32(f32, math.Float32bits(v))
	}
	var f64 []byte
	for _, v := range []float64{0.125, 0.125, 1, -1} {
		f64 = le.AppendUint64(f64, math.Float64bits(v))
	}
	var i16 []byte
	for _, v := range []int16{16384, -16384, 32767, 32767} {
		i16 = le.AppendUint16(i16, uint16(v))
	}
	tests := []struct {
		name string
		file []byte
		enc  Encoding
		want []float32
	}{
		{"pcm8", riff(fmtChunk(1, 2, 8000, 8), chunk{id: "data", data: []byte{192, 64, 0, 0}}), PCM8, []float32{0, -1}},
		{"pcm16", riff(fmtChunk(1, 2, 8000, 16), chunk{id: "data", data: i16}), PCM16, []float32{0, 32767.0 / 32768}},
		{"pcm24", riff(fmtChunk(1, 2, 44100, 24), chunk{id: "data", data: b24}), PCM24, []float32{0, -0.5}},
		{"pcm32", riff(fmtChunk(1, 2, 48000, 32), chunk{id: "data", data: b32}), PCM32, []float32{0.375, -1}},
		{"float32", riff(fmtChunk(3, 2, 16000, 32), chunk{id: "data", data: f32}), Float32, []float32{0.5, 0}},
		{"float64", riff(fmtChunk(3, 2, 16000, 64), chunk{id: "data", data: f64}), Float64, []float32{0.125, 0}},
		{"extensible pcm24", riff(extensibleFmt(1, 2, 96000, 24, ksdataformatGUIDTail), chunk{id: "data", data: b24}), PCM24, []float32{0, -0.5}},
		{"extensible float", riff(extensibleFmt(3, 2, 16000, 32, ksdataformatGUIDTail), chunk{id: "data", data: f32}), Float32, []float32{0.5, 0}},
		{"chunks before and after", riff(chunk{id: "LIST", data: []byte("odd")}, fmtChunk(1, 2, 8000, 16),
			chunk{id: "fact", data: []byte{2, 0, 0, 0}}, chunk{id: "data", data: i16}, chunk{id: "id3 ", data: []byte("tail")}), PCM16, []float32{0, 32767.0 / 32768}},
		{"streamed size", riff(fmtChunk(1, 2, 8000, 16), chunk{id: "data", data: append(i16, 1), size: size32(math.MaxUint32)}), PCM16, []float32{0, 32767.0 / 32768}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, info, err := ReadWAV(bytes.NewReader(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if info.Encoding != tc.enc || info.Channels != 2 || info.Frames != len(tc.want) {
				t.Errorf("info = %+v", info)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if math.Abs(float64(got[i]-tc.want[i])) > 1e-7 {
					t.Errorf("sample %d = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestReadWAVErrors(t *testing.T) {
	good := riff(fmtChunk(1, 1, 16000, 16), chunk{id: "data", data: make([]byte, 8)})
	badGUID := append([]byte{}, ksdataformatGUIDTail...)
	badGUID[5] ^= 1
	fmtBadAlign := fmtChunk(1, 2, 16000, 16)
	binary.LittleEndian.PutUint16(fmtBadAlign.data[12:], 3)
	tests := []struct {
		name string
		file []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrTruncated, "RIFF header"},
		{"short", []byte("RIFF\x00\x00"), ErrTruncated, ""},
		{"not riff", []byte("OggS\x00\x00\x00\x00WAVE"), ErrNotWAV, "OggS"},
		{"big endian", []byte("RIFX\x00\x00\x00\x00WAVE"), ErrUnsupported, "RIFX"},
		{"rf64", []byte("RF64\x00\x00\x00\x00WAVE"), ErrUnsupported, "RF64"},
		{"not wave", []byte("RIFF\x04\x00\x00\x00AVI "), ErrNotWAV, "AVI"},
		{"no chunks", riff(), ErrInvalid, "no \"fmt \" chunk"},
		{"no data", riff(fmtChunk(1, 1, 16000, 16)), ErrInvalid, "no \"data\" chunk"},
		{"data before fmt", riff(chunk{id: "data", data: make([]byte, 4)}, fmtChunk(1, 1, 16000, 16)), ErrInvalid, "before"},
		{"two fmt", riff(fmtChunk(1, 1, 16000, 16), fmtChunk(1, 1, 16000, 16)), ErrInvalid, "second"},
		{"fmt too small", riff(chunk{id: "fmt ", data: make([]byte, 8)}), ErrInvalid, "8 bytes"},
		{"fmt absurd", riff(chunk{id: "fmt ", data: nil, size: size32(0xFFFFFFF0)}), ErrInvalid, "4294967280"},
		{"fmt truncated", good[:30], ErrTruncated, "fmt"},
		{"adpcm", riff(fmtChunk(2, 1, 16000, 4), chunk{id: "data"}), ErrUnsupported, "0x0002"},
		{"12-bit", riff(fmtChunk(1, 1, 16000, 12), chunk{id: "data"}), ErrUnsupported, "12-bit"},
		{"float16", riff(fmtChunk(3, 1, 16000, 16), chunk{id: "data"}), ErrUnsupported, "16-bit"},
		{"no channels", riff(fmtChunk(1, 0, 16000, 16), chunk{id: "data"}), ErrInvalid, "0 channels"},
		{"rate 0", riff(fmtChunk(1, 1, 0, 16), chunk{id: "data"}), ErrInvalid, "sample rate 0"},
		{"rate absurd", riff(fmtChunk(1, 1, 1<<30, 16), chunk{id: "data"}), ErrInvalid, "sample rate"},
		{"block align", riff(fmtBadAlign, chunk{id: "data"}), ErrInvalid, "block align 3"},
		{"extensible short", riff(chunk{id: "fmt ", data: append(fmtChunk(0xFFFE, 1, 16000, 16).data, 0, 0)}), ErrInvalid, "EXTENSIBLE"},
		{"extensible guid", riff(extensibleFmt(1, 1, 16000, 16, badGUID), chunk{id: "data"}), ErrUnsupported, "GUID"},
		{"partial frame", riff(fmtChunk(1, 2, 16000, 16), chunk{id: "data", data: make([]byte, 6)}), ErrInvalid, "whole number"},
		{"data truncated", good[:len(good)-3], ErrTruncated, "declares 8 bytes, only 5"},
		{"data absurd", riff(fmtChunk(1, 1, 16000, 16), chunk{id: "data", size: size32(0xFFFFFFF0)}), ErrTooLarge, "4294967280"},
		{"chunk truncated", riff(fmtChunk(1, 1, 16000, 16), chunk{id: "LIST", data: []byte("ab"), size: size32(1000)}), ErrTruncated, "\"LIST\" chunk declares 1000"},
		{"header cut", good[:40], ErrTruncated, "chunk header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ReadWAV(bytes.NewReader(tc.file))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %q, want it to mention %q", err, tc.msg)
			}
		})
	}
	// The limit option.
	if _, _, err := ReadWAV(bytes.NewReader(good), WithMaxDataBytes(4)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("limit: %v", err)
	}
	streamed := riff(fmtChunk(1, 1, 16000, 16), chunk{id: "data", data: make([]byte, 100), size: size32(math.MaxUint32)})
	if _, _, err := ReadWAV(bytes.NewReader(streamed), WithMaxDataBytes(10)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("streamed limit: %v", err)
	}
}

// A header that claims a huge data chunk must not make the reader allocate
// for it: memory follows the bytes that are really there.
func TestReadWAVDoesNotTrustSizes(t *testing.T) {
	file := riff(fmtChunk(1, 2, 16000, 16), chunk{id: "data", data: make([]byte, 16), size: size32(1000 << 20)})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err := ReadWAV(bytes.NewReader(file))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("err = %v, want ErrTruncated", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
		t.Errorf("reading a 16-byte data chunk that claims 1000 MiB allocated %d bytes", grew)
	}
}

func FuzzReadWAV(f *testing.F) {
	var buf bytes.Buffer
	WriteWAV(&buf, []float32{0, 0.5, -0.5, 1}, 16000, PCM16)
	f.Add(buf.Bytes())
	buf.Reset()
	WriteWAV(&buf, []float32{0.1, -0.2}, 44100, Float32)
	f.Add(buf.Bytes())
	f.Add(riff(extensibleFmt(1, 2, 96000, 24, ksdataformatGUIDTail), chunk{id: "data", data: make([]byte, 12)}))
	f.Add(riff(chunk{id: "LIST", data: []byte("odd")}, fmtChunk(3, 2, 8000, 64), chunk{id: "data", data: make([]byte, 32)}))
	f.Add(riff(fmtChunk(1, 1, 8000, 8), chunk{id: "data", data: []byte{1, 2, 3}, size: size32(math.MaxUint32)}))
	f.Fuzz(func(t *testing.T, data []byte) {
		samples, info, err := ReadWAV(bytes.NewReader(data), WithMaxDataBytes(1<<20))
		if err != nil {
			return
		}
		if len(samples) != info.Frames || info.Channels < 1 || info.Channels > MaxChannels || info.SampleRate < 1 {
			t.Fatalf("inconsistent: %d samples, info %+v", len(samples), info)
		}
		if info.Encoding != Float32 && info.Encoding != Float64 {
			for i, s := range samples {
				if !(s >= -1 && s <= 1) {
					t.Fatalf("integer sample %d = %v outside [-1, 1]", i, s)
				}
			}
		}
	})
}

// AppendPCM16 gives exactly the data chunk of a PCM16 WAV of the same
// samples (out-of-range and NaN samples included).
func TestAppendPCM16MatchesWAVData(t *testing.T) {
	samples := []float32{0, 0.5, -0.5, 1, -1, 1.5, -2, float32(math.NaN()), 1.0 / 32768, -0.99997}
	var buf bytes.Buffer
	if err := WriteWAV(&buf, samples, 24000, PCM16); err != nil {
		t.Fatal(err)
	}
	wav := buf.Bytes()
	data := wav[len(wav)-2*len(samples):]
	got := AppendPCM16([]byte{0xAA}, samples)
	if got[0] != 0xAA || !bytes.Equal(got[1:], data) {
		t.Fatalf("AppendPCM16 % x, WAV data % x", got[1:], data)
	}
}
