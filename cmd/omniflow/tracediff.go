package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/omniflow-go/omniflow/profiler"
)

const diffUsageText = `Usage: omniflow trace diff [flags] BASE NEW

Compares the summaries of two Chrome traces (see 'omniflow trace summarize
-h') row by row, joined on (category, name): calls and a metric in BASE and
in NEW, the change NEW-BASE and the ratio NEW/BASE. A row found in one trace
only is shown with "-" on the other side and counts as 0 there in the
change. Rows are sorted by the size of the change, largest first. A header
gives each file's span count and total self time.

Flags (before or after the files):
  --metric M    self, total, mean or calls (default self)
  --top N       print the N rows with the largest change (default 30; 0: all)
  --cat CAT     keep the rows of these categories only (comma-separated:
                operator,kernel or cpu_op,kernel); the header's totals are
                still those of the whole traces
  --json        print the headers and rows as a JSON object (times in ns)

Examples:
  omniflow trace diff before/trace.json.gz after/trace.json.gz
  omniflow trace diff --metric total --cat kernel --top 10 a.pt.trace.json b.pt.trace.json
`

// diffMetrics are the values --metric compares, as int64: nanoseconds, or
// a count for calls.
var diffMetrics = map[string]func(profiler.SummaryRow) int64{
	"self":  func(r profiler.SummaryRow) int64 { return int64(r.Self) },
	"total": func(r profiler.SummaryRow) int64 { return int64(r.Total) },
	"mean":  func(r profiler.SummaryRow) int64 { return int64(r.Mean()) },
	"calls": func(r profiler.SummaryRow) int64 { return int64(r.Calls) },
}

// diffRow is one (category, name) of the two traces; A or B is nil where
// the trace has no such spans.
type diffRow struct {
	Cat, Name string
	A, B      *profiler.SummaryRow
	ValA      int64 // the metric; 0 where the side is missing
	ValB      int64
}

func (d diffRow) delta() int64 { return d.ValB - d.ValA }

// ratio is B/A; ok is false where a side is missing or A is 0.
func (d diffRow) ratio() (r float64, ok bool) {
	if d.A == nil || d.B == nil || d.ValA == 0 {
		return 0, false
	}
	return float64(d.ValB) / float64(d.ValA), true
}

// diffRows joins two tables on (category, name) and sorts the rows by the
// absolute change of metric, largest first, then by category and name.
func diffRows(a, b []profiler.SummaryRow, metric func(profiler.SummaryRow) int64) []diffRow {
	type key struct{ cat, name string }
	idx := map[key]int{}
	var rows []diffRow
	for i := range a {
		r := &a[i]
		idx[key{r.Cat, r.Name}] = len(rows)
		rows = append(rows, diffRow{Cat: r.Cat, Name: r.Name, A: r, ValA: metric(*r)})
	}
	for i := range b {
		r := &b[i]
		j, ok := idx[key{r.Cat, r.Name}]
		if !ok {
			j = len(rows)
			rows = append(rows, diffRow{Cat: r.Cat, Name: r.Name})
		}
		rows[j].B, rows[j].ValB = r, metric(*r)
	}
	abs := func(v int64) int64 { return max(v, -v) }
	slices.SortFunc(rows, func(x, y diffRow) int {
		if c := cmp.Compare(abs(y.delta()), abs(x.delta())); c != 0 {
			return c
		}
		if c := cmp.Compare(x.Cat, y.Cat); c != 0 {
			return c
		}
		return cmp.Compare(x.Name, y.Name)
	})
	return rows
}

func traceDiff(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var f tableFlags
	var metricName string
	fs := flag.NewFlagSet("omniflow trace diff", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // usage and errors are printed below
	f.register(fs)
	fs.StringVar(&metricName, "metric", "self", "")
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "omniflow trace diff: "+format+"\n\n", a...)
		fmt.Fprint(stderr, diffUsageText)
		return 2
	}
	files, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, diffUsageText)
		return 0
	} else if err != nil {
		return usageErr("%v", err)
	}
	if len(files) != 2 {
		return usageErr("want two files, BASE and NEW; got %d: %s", len(files), strings.Join(files, " "))
	}
	if f.top < 0 {
		return usageErr("--top %d: want a count >= 0 (0 prints every row)", f.top)
	}
	metric, ok := diffMetrics[metricName]
	if !ok {
		return usageErr("--metric %q: want self, total, mean or calls", metricName)
	}

	var sums [2]*profiler.Summary
	for i, path := range files {
		ivs, err := readTrace(ctx, path)
		if err != nil {
			fmt.Fprintf(stderr, "omniflow trace diff: %v\n", err)
			return 1
		}
		sums[i] = profiler.Summarize(ivs)
	}
	rows := diffRows(keepCats(sums[0].Rows, f.cats), keepCats(sums[1].Rows, f.cats), metric)
	matched := len(rows)
	if f.top > 0 && len(rows) > f.top {
		rows = rows[:f.top]
	}
	if f.json {
		err = writeDiffJSON(stdout, metricName, files, sums, rows)
	} else {
		err = writeDiffText(stdout, metricName, files, sums, rows)
		if err == nil && len(rows) < matched {
			_, err = fmt.Fprintf(stdout, "\n%d of %d rows; --top 0 prints them all\n", len(rows), matched)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "omniflow trace diff: writing the table: %v\n", err)
		return 1
	}
	return 0
}

func writeDiffText(w io.Writer, metric string, files []string, sums [2]*profiler.Summary, rows []diffRow) error {
	selfA, selfB := int64(sums[0].SelfTotal), int64(sums[1].SelfTotal)
	change := fmtDiffDeltaMS(selfB - selfA)
	if selfA > 0 {
		change += fmt.Sprintf(" ms, %.2fx", float64(selfB)/float64(selfA))
	} else {
		change += " ms"
	}
	if _, err := fmt.Fprintf(w, "A %s: %d spans, self total %s ms (hand-offs excluded)\n"+
		"B %s: %d spans, self total %s ms (%s)\n\n",
		files[0], sums[0].Spans, fmtDiffMS(selfA), files[1], sums[1].Spans, fmtDiffMS(selfB), change); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	value, unit := fmtDiffMS, " ms"
	if metric == "calls" { // the calls columns are the metric's: print them once
		fmt.Fprintln(tw, "kind\tname\tcalls A\tcalls B\tdelta\tratio\t")
	} else {
		fmt.Fprintf(tw, "kind\tname\tcalls A\tcalls B\t%[1]s A%[2]s\t%[1]s B%[2]s\tdelta%[2]s\tratio\t\n", metric, unit)
	}
	for _, d := range rows {
		callsA, callsB, valA, valB := "-", "-", "-", "-"
		if d.A != nil {
			callsA, valA = strconv.Itoa(d.A.Calls), value(d.ValA)
		}
		if d.B != nil {
			callsB, valB = strconv.Itoa(d.B.Calls), value(d.ValB)
		}
		ratio := "-"
		if r, ok := d.ratio(); ok {
			ratio = fmt.Sprintf("%.2fx", r)
		}
		name := clipName(d.Name, 60)
		if metric == "calls" {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%+d\t%s\t\n", d.Cat, name, callsA, callsB, d.delta(), ratio)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", d.Cat, name, callsA, callsB, valA, valB, fmtDiffDeltaMS(d.delta()), ratio)
		}
	}
	return tw.Flush()
}

func fmtDiffMS(ns int64) string { return fmt.Sprintf("%.3f", float64(ns)/float64(time.Millisecond)) }

func fmtDiffDeltaMS(ns int64) string {
	return fmt.Sprintf("%+.3f", float64(ns)/float64(time.Millisecond))
}

// clipName keeps a span name on one table cell: no tabs or line breaks,
// at most n runes.
func clipName(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// diffJSON is the --json output. Times are integer nanoseconds; delta is
// in Unit: "ns", or "calls" for --metric calls.
type diffJSON struct {
	Metric string        `json:"metric"`
	Unit   string        `json:"unit"`
	A      diffFileJSON  `json:"a"`
	B      diffFileJSON  `json:"b"`
	Rows   []diffRowJSON `json:"rows"`
}

type diffFileJSON struct {
	File        string `json:"file"`
	Spans       int    `json:"spans"`
	WallNS      int64  `json:"wall_ns"`
	SelfTotalNS int64  `json:"self_total_ns"`
}

type diffRowJSON struct {
	Cat  string        `json:"cat"`
	Name string        `json:"name"`
	A    *diffSideJSON `json:"a"` // null: no such spans in A
	B    *diffSideJSON `json:"b"`
	// Delta is B-A of the metric, a missing side counting as 0.
	Delta int64 `json:"delta"`
	// Ratio is B/A of the metric; null where a side is missing or A is 0.
	Ratio *float64 `json:"ratio"`
}

type diffSideJSON struct {
	Calls   int   `json:"calls"`
	TotalNS int64 `json:"total_ns"`
	SelfNS  int64 `json:"self_ns"`
	MeanNS  int64 `json:"mean_ns"`
}

func writeDiffJSON(w io.Writer, metric string, files []string, sums [2]*profiler.Summary, rows []diffRow) error {
	file := func(i int) diffFileJSON {
		return diffFileJSON{File: files[i], Spans: sums[i].Spans, WallNS: int64(sums[i].Wall), SelfTotalNS: int64(sums[i].SelfTotal)}
	}
	side := func(r *profiler.SummaryRow) *diffSideJSON {
		if r == nil {
			return nil
		}
		return &diffSideJSON{Calls: r.Calls, TotalNS: int64(r.Total), SelfNS: int64(r.Self), MeanNS: int64(r.Mean())}
	}
	out := diffJSON{Metric: metric, Unit: "ns", A: file(0), B: file(1), Rows: make([]diffRowJSON, len(rows))}
	if metric == "calls" {
		out.Unit = "calls"
	}
	for i, d := range rows {
		out.Rows[i] = diffRowJSON{Cat: d.Cat, Name: d.Name, A: side(d.A), B: side(d.B), Delta: d.delta()}
		if r, ok := d.ratio(); ok {
			out.Rows[i].Ratio = &r
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
