package cpu

import "fmt"

// Kernels panic on programmer errors (a slice whose length does not match
// the shape it is given): the tensor-level wrapper in package device
// validates user input and returns errors before it calls in here.

// mustLen panics unless len(s) == n.
func mustLen[T any](kernel, name string, s []T, n int) {
	if len(s) != n {
		panic(fmt.Sprintf("cpu.%s: len(%s) = %d, want %d", kernel, name, len(s), n))
	}
}

// mustAtLeast panics unless len(s) >= n (strided operands may be views into
// a larger buffer).
func mustAtLeast[T any](kernel, name string, s []T, n int) {
	if len(s) < n {
		panic(fmt.Sprintf("cpu.%s: len(%s) = %d, want at least %d", kernel, name, len(s), n))
	}
}

// mustDims panics unless every dimension is >= 0.
func mustDims(kernel string, dims ...int) {
	for _, d := range dims {
		if d < 0 {
			panic(fmt.Sprintf("cpu.%s: negative dimension in %v", kernel, dims))
		}
	}
}

// mustPositive panics unless v > 0.
func mustPositive(kernel, name string, v int) {
	if v <= 0 {
		panic(fmt.Sprintf("cpu.%s: %s = %d, want > 0", kernel, name, v))
	}
}

// grainFor returns how many of the n items of size per each one goroutine
// should take at least, so that a goroutine gets about minWork elements of
// work: smaller jobs run on the calling goroutine alone.
func grainFor(per int) int {
	const minWork = 1 << 14
	if per <= 0 {
		return minWork
	}
	return max(1, minWork/per)
}
