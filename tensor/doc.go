// Package tensor defines omniflow's tensor type: a dtype, a shape and
// strides over storage that is an Arrow buffer on the host or a device
// handle. Operators pass *Tensor values along graph edges.
package tensor
