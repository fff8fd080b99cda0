//go:build openblas && cgo

package bench

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>

void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
*/
import "C"

import "unsafe"

// openblasGEMM calls cblas_sgemm of the system's OpenBLAS (Debian:
// apt-get install libopenblas-dev). Its thread count is process-wide.
var openblasGEMM = &GEMM{
	Name: "openblas",
	Start: func(threads int) (func(int, []float32, []float32, []float32), func()) {
		prev := int(C.openblas_get_num_threads())
		C.openblas_set_num_threads(C.int(threads))
		return func(n int, a, b, c []float32) {
				C.cblas_sgemm(C.CblasRowMajor, C.CblasNoTrans, C.CblasNoTrans, C.blasint(n), C.blasint(n), C.blasint(n),
					1, (*C.float)(unsafe.Pointer(&a[0])), C.blasint(n),
					(*C.float)(unsafe.Pointer(&b[0])), C.blasint(n),
					0, (*C.float)(unsafe.Pointer(&c[0])), C.blasint(n))
			}, func() {
				C.openblas_set_num_threads(C.int(prev))
			}
	},
}

// OpenBLASConfig describes the linked OpenBLAS (version, target core).
func OpenBLASConfig() string { return C.GoString(C.openblas_get_config()) }
