package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/chrome"
)

const traceUsageText = `Usage: omniflow trace <subcommand> [flags] FILE

Subcommands:
  summarize FILE   the per-span table of a Chrome trace (ours or the PyTorch
                   profiler's, .json or .json.gz): calls, total, self, mean,
                   min, max, share of self time, GFLOP/s, GB/s
  diff BASE NEW    the same table for two traces side by side, joined on
                   (category, name): a metric in each, its change and ratio,
                   largest change first

Run 'omniflow trace summarize -h' or 'omniflow trace diff -h' for their flags.
`

// traceMain runs "omniflow trace". Exit codes: 0 done, 1 the work failed
// (a file missing or malformed), 2 the command line is wrong.
func traceMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, traceUsageText)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, traceUsageText)
		return 0
	case "summarize":
		return traceSummarize(ctx, args[1:], stdout, stderr)
	case "diff":
		return traceDiff(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "omniflow trace: unknown subcommand %q\n\n", args[0])
	fmt.Fprint(stderr, traceUsageText)
	return 2
}

const summarizeUsageText = `Usage: omniflow trace summarize [flags] FILE

Prints one row per (category, name) of the spans in a Chrome trace: calls,
total time, self time (the time not covered by the spans nested in it on
its thread), mean, min, max, share of all self time, and GFLOP/s and GB/s
where the spans carry "flops" and "bytes" args. FILE may be plain JSON or
gzip-compressed, in the object or array form; the PyTorch profiler's traces
work as they are.

Flags (before or after FILE):
  --top N       print the N rows first in the order (default 30; 0: all)
  --sort KEY    self, total, calls or mean, largest first (default self)
  --cat CAT     keep the rows of these categories only (comma-separated:
                operator,kernel or cpu_op,kernel); self times and shares
                are still those of the whole trace
  --json        print the rows as a JSON array (times in ns) instead of text

Examples:
  omniflow trace summarize profiles/20260101-120000_wan/trace.json.gz
  omniflow trace summarize --sort total --cat kernel --top 10 worker0.pt.trace.json.gz
`

// tableFlags are the flags of the trace subcommands that print a table.
type tableFlags struct {
	top  int
	cats string
	json bool
}

func (f *tableFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.top, "top", 30, "")
	fs.StringVar(&f.cats, "cat", "", "")
	fs.BoolVar(&f.json, "json", false, "")
}

// parseInterspersed parses fs's flags wherever they stand in args and
// returns the other arguments in order; everything after "--" is one of
// those. (flag stops at the first argument that is not a flag: parse again
// after each one, so that flags may follow the files.)
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := args[:len(args)-len(rest)]; len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(files, rest...), nil
		}
		if len(rest) == 0 {
			return files, nil
		}
		files, args = append(files, rest[0]), rest[1:]
	}
}

// keepCats returns, in a new slice, the rows whose category is in cats
// (comma-separated, as --cat takes them); all rows if cats is empty.
func keepCats(rows []profiler.SummaryRow, cats string) []profiler.SummaryRow {
	rows = slices.Clone(rows)
	if cats == "" {
		return rows
	}
	keep := map[string]bool{}
	for _, c := range strings.Split(cats, ",") {
		keep[strings.TrimSpace(c)] = true
	}
	return slices.DeleteFunc(rows, func(r profiler.SummaryRow) bool { return !keep[r.Cat] })
}

type summarizeFlags struct {
	tableFlags
	sortKey string
}

func traceSummarize(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var f summarizeFlags
	fs := flag.NewFlagSet("omniflow trace summarize", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // usage and errors are printed below
	f.register(fs)
	fs.StringVar(&f.sortKey, "sort", "self", "")
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "omniflow trace summarize: "+format+"\n\n", a...)
		fmt.Fprint(stderr, summarizeUsageText)
		return 2
	}
	files, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, summarizeUsageText)
		return 0
	} else if err != nil {
		return usageErr("%v", err)
	}
	switch {
	case len(files) == 0:
		return usageErr("missing FILE")
	case len(files) > 1:
		return usageErr("one FILE at a time, got %d: %s", len(files), strings.Join(files, " "))
	case f.top < 0:
		return usageErr("--top %d: want a count >= 0 (0 prints every row)", f.top)
	}
	less, ok := rowOrders[f.sortKey]
	if !ok {
		return usageErr("--sort %q: want self, total, calls or mean", f.sortKey)
	}

	path := files[0]
	ivs, err := readTrace(ctx, path)
	if err != nil {
		fmt.Fprintf(stderr, "omniflow trace summarize: %v\n", err)
		return 1
	}
	sum := profiler.Summarize(ivs)
	all := len(sum.Rows)
	rows := keepCats(sum.Rows, f.cats)
	slices.SortStableFunc(rows, less)
	matched := len(rows)
	if f.top > 0 && len(rows) > f.top {
		rows = rows[:f.top]
	}
	if f.json {
		err = writeRowsJSON(stdout, sum, rows)
	} else {
		shown := *sum
		shown.Rows = rows
		err = shown.WriteText(stdout, path)
		if err == nil && len(rows) < all {
			note := fmt.Sprintf("\n%d of %d rows", len(rows), all)
			if f.cats != "" {
				note += fmt.Sprintf(" (%d in --cat %s)", matched, f.cats)
			}
			if len(rows) < matched {
				note += "; --top 0 prints them all"
			}
			_, err = fmt.Fprintln(stdout, note)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "omniflow trace summarize: writing the table: %v\n", err)
		return 1
	}
	return 0
}

// rowOrders sort rows largest first; ties keep the summary's order (self
// time, then category and name).
var rowOrders = map[string]func(a, b profiler.SummaryRow) int{
	"self":  func(a, b profiler.SummaryRow) int { return cmp.Compare(b.Self, a.Self) },
	"total": func(a, b profiler.SummaryRow) int { return cmp.Compare(b.Total, a.Total) },
	"calls": func(a, b profiler.SummaryRow) int { return cmp.Compare(b.Calls, a.Calls) },
	"mean":  func(a, b profiler.SummaryRow) int { return cmp.Compare(b.Mean(), a.Mean()) },
}

func readTrace(ctx context.Context, path string) ([]profiler.Interval, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ivs, err := chrome.ReadIntervals(ctxReader{ctx, f})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ivs, nil
}

// ctxReader stops a long read when the command is interrupted.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// summaryRowJSON is one row of --json output. Times are integer
// nanoseconds, exact; share is a fraction of all self time.
type summaryRowJSON struct {
	Cat     string  `json:"cat"`
	Name    string  `json:"name"`
	Calls   int     `json:"calls"`
	TotalNS int64   `json:"total_ns"`
	SelfNS  int64   `json:"self_ns"`
	MeanNS  int64   `json:"mean_ns"`
	MinNS   int64   `json:"min_ns"`
	MaxNS   int64   `json:"max_ns"`
	Share   float64 `json:"share"`
	Flops   float64 `json:"flops,omitempty"`
	Bytes   float64 `json:"bytes,omitempty"`
	GFLOPS  float64 `json:"gflop_per_s,omitempty"`
	GBPS    float64 `json:"gb_per_s,omitempty"`
}

func writeRowsJSON(w io.Writer, sum *profiler.Summary, rows []profiler.SummaryRow) error {
	out := make([]summaryRowJSON, len(rows))
	for i, r := range rows {
		out[i] = summaryRowJSON{
			Cat: r.Cat, Name: r.Name, Calls: r.Calls,
			TotalNS: int64(r.Total), SelfNS: int64(r.Self), MeanNS: int64(r.Mean()),
			MinNS: int64(r.Min), MaxNS: int64(r.Max), Share: sum.Share(r),
			Flops: r.Flops, Bytes: r.Bytes, GFLOPS: r.GFLOPS(), GBPS: r.GBPS(),
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
