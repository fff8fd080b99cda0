package cpu

import (
	"runtime"
	"sync"
)

// Threads returns the number of goroutines kernels use when asked for 0:
// GOMAXPROCS.
func Threads() int { return runtime.GOMAXPROCS(0) }

// ParallelFor calls fn over [0, n) split into contiguous ranges of at least
// grain items, on up to threads goroutines (threads <= 0 means Threads()).
// The calling goroutine runs one range itself; every goroutine started here
// has returned when ParallelFor returns.
func ParallelFor(threads, n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if threads <= 0 {
		threads = Threads()
	}
	if grain < 1 {
		grain = 1
	}
	parts := min(threads, (n+grain-1)/grain)
	if parts <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + parts - 1) / parts
	for lo := chunk; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	fn(0, min(chunk, n))
	wg.Wait()
}
