// Command omniflow runs pipelines, summarizes traces and benchmarks
// operators. Run "omniflow help" for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
)

// command is one subcommand: run gets the arguments after its name.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() map[string]command {
	return map[string]command{
		"trace": {"summarize or diff Chrome trace files (ours or the PyTorch profiler's)", traceMain},
		"run":   {"run a pipeline with built-in defaults: outputs and a profile under out/", runMain},
		"serve": {"serve the omni engine over HTTP; POST /start_profile and /stop_profile toggle profiling", serveMain},
		"bench": {"time device kernels: GFLOP/s and GB/s per kernel, size and thread count", benchMain},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		if len(args) > 1 {
			if c, ok := cmds[args[1]]; ok {
				return c.run(ctx, []string{"-h"}, stdout, stderr)
			}
		}
		usage(stdout, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "omniflow: unknown command %q\n\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "omniflow: multi-stage model pipelines with profiling built in")
	fmt.Fprintln(w, "\nUsage: omniflow <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'omniflow <command> -h' for a command's flags.")
	fmt.Fprintln(w, "Set OMNIFLOW_PROFILER_DIR (or VLLM_TORCH_PROFILER_DIR) to profile into that folder.")
}

// usageFailer returns the function a command calls on a bad command line:
// it prints "omniflow CMD: message" and the usage to stderr and returns
// exit status 2.
func usageFailer(cmd, usage string, stderr io.Writer) func(format string, a ...any) int {
	return func(format string, a ...any) int {
		fmt.Fprintf(stderr, "omniflow "+cmd+": "+format+"\n\n", a...)
		fmt.Fprint(stderr, usage)
		return 2
	}
}

// parseFlags parses args into fs. done reports that the command should
// exit with code: after -h (usage on stdout, 0) or a bad flag (2).
func parseFlags(fs *flag.FlagSet, args []string, usage string, stdout io.Writer, usageErr func(string, ...any) int) (code int, done bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return 0, true
		}
		return usageErr("%v", err), true
	}
	return 0, false
}
