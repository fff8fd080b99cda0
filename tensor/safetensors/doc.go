// Package safetensors reads and writes the safetensors format
// (https://huggingface.co/docs/safetensors), in which published model
// weights come, as *tensor.Tensor values. Models in omniflow run with
// seeded synthetic weights by default; this package is how they load real
// ones.
//
// A file is an 8-byte little-endian header size N, N bytes of JSON mapping
// tensor names to {"dtype", "shape", "data_offsets"} (plus an optional
// "__metadata__" object of strings), then the tensors' bytes, row-major and
// little-endian. Open memory-maps a file read-only and validates it as the
// reference implementation does: header size bounded, JSON well formed,
// dtypes known, every tensor's size equal to its shape times its element
// size, and the data region covered exactly by the tensors in offset
// order, with no overlaps and no holes. Duplicate keys, which the
// reference lets through, are errors too. Every error wraps ErrInvalid,
// names the tensor and says what was wrong.
//
// Tensor returns zero-copy views of the mapping, which is read-only:
// writing into such a view crashes the process. TensorCopy returns a
// tensor you own. Names are sorted.
//
// Write and WriteFile lay files out as the reference writer does, so the
// bytes match it (metadata keys aside, which it writes in hash order):
// tensors by decreasing alignment then name, the header padded with spaces
// so every tensor is aligned to its element size.
//
// Package tensor has F32, F16, BF16, I32, I64 and U8. Files holding other
// dtypes (F64, I8, F8_E4M3, ...) open and validate; asking for such a
// tensor returns ErrUnsupportedDType.
package safetensors
