// Package bench is omniflow's benchmark harness: operator-level
// comparisons against reference libraries, run side by side in one
// process so that they share the machine's state (clock, load, caches).
//
// GEMMs lists the square fp32 matrix products it compares: omniflow's
// device/cpu Sgemm, gonum's pure-Go Sgemm, and OpenBLAS through cgo when
// built with the openblas tag (the default build stays pure Go):
//
//	go test -bench GEMM ./bench/                          # omniflow, gonum
//	go test -tags openblas -bench GEMM ./bench/           # + OpenBLAS (needs libopenblas-dev)
//	go run -tags openblas ./bench/cmd/gemmtable           # markdown table with ratios
package bench
