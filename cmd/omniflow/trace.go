package main

import (
	"context"
	"fmt"
	"io"
)

// traceMain is replaced by the trace subcommand's implementation.
func traceMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "omniflow trace: not implemented yet")
	return 1
}
