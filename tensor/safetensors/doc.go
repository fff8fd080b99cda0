// Package safetensors reads and writes the safetensors format
// (https://huggingface.co/docs/safetensors), in which real model weights
// are published, as *tensor.Tensor values.
//
// A file is an 8-byte little-endian header size N, N bytes of JSON mapping
// tensor names to {"dtype", "shape", "data_offsets"} (plus an optional
// "__metadata__" object of strings), then the tensors' bytes. Open
// memory-maps a file read-only and validates it the way the reference
// implementation does, and more strictly (duplicate keys are errors):
// header size bounded, JSON well formed, dtypes known, every tensor's size
// equal to its shape times its element size, and the data region covered
// exactly by the tensors, with no overlaps and no holes. Every error names
// the tensor and says what was wrong.
//
// Tensor returns zero-copy views of the mapping, which is read-only:
// writing into such a view crashes the process. TensorCopy returns a tensor
// you own. Write and WriteFile produce the same bytes as the reference
// writer for the same tensors and metadata.
//
// Package tensor has F32, F16, BF16, I32, I64 and U8. Files holding other
// dtypes (F64, I8, F8_E4M3, ...) open and validate; asking for such a
// tensor returns ErrUnsupportedDType.
package safetensors
