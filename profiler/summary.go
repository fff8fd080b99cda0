package profiler

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Interval is one span on a track, the unit the summary works on. Spans on
// one track nest by time (one goroutine runs a lane), which is how self time
// is found for traces that carry no parent ids.
type Interval struct {
	Track      uint64
	Name       string
	Cat        string
	Start, End int64 // ns
	Flops      float64
	Bytes      float64
}

// SummaryRow aggregates the spans of one (category, name).
type SummaryRow struct {
	Cat   string
	Name  string
	Calls int
	Total time.Duration
	Self  time.Duration
	Min   time.Duration
	Max   time.Duration
	Flops float64
	Bytes float64
}

// Mean is Total/Calls.
func (r SummaryRow) Mean() time.Duration {
	if r.Calls == 0 {
		return 0
	}
	return r.Total / time.Duration(r.Calls)
}

// GFLOPS is the achieved rate over the spans that reported FLOPs (0 if none).
func (r SummaryRow) GFLOPS() float64 {
	if r.Flops == 0 || r.Total <= 0 {
		return 0
	}
	return r.Flops / float64(r.Total.Nanoseconds())
}

// GBPS is the achieved memory rate (0 if no bytes were reported).
func (r SummaryRow) GBPS() float64 {
	if r.Bytes == 0 || r.Total <= 0 {
		return 0
	}
	return r.Bytes / float64(r.Total.Nanoseconds())
}

// Summary is the per-span-name table of a profile.
type Summary struct {
	Rows  []SummaryRow // by self time, largest first
	Spans int
	// Wall is the time from the first span's start to the last span's end.
	Wall time.Duration
	// SelfTotal is the sum of all self times but hand-offs'; Share
	// divides by it.
	SelfTotal time.Duration
}

// Share is the row's self time as a fraction of all self time (0 for
// hand-offs, which are time spent queued, not working).
func (s *Summary) Share(r SummaryRow) float64 {
	if s.SelfTotal <= 0 || r.Cat == "handoff" {
		return 0
	}
	return float64(r.Self) / float64(s.SelfTotal)
}

// Summarize computes the table. On each track, a span's self time is its
// duration minus the time covered by the spans directly nested in it.
// Summarize sorts ivs in place.
func Summarize(ivs []Interval) *Summary {
	sum := &Summary{Spans: len(ivs)}
	if len(ivs) == 0 {
		return sum
	}
	// Stable, so that spans with equal start and end keep their order
	// (the first one encloses the next, as in file order).
	slices.SortStableFunc(ivs, func(a, b Interval) int {
		if c := cmp.Compare(a.Track, b.Track); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Start, b.Start); c != 0 {
			return c
		}
		return cmp.Compare(b.End, a.End) // enclosing span first
	})
	type key struct{ cat, name string }
	rows := map[key]*SummaryRow{}
	child := make([]int64, len(ivs))   // time covered by direct children (their union)
	covered := make([]int64, len(ivs)) // end of the children's union so far
	var stack []int
	first, last := ivs[0].Start, ivs[0].End
	for i := range ivs {
		iv := &ivs[i]
		if iv.End < iv.Start {
			iv.End = iv.Start
		}
		first, last = min(first, iv.Start), max(last, iv.End)
		if i > 0 && ivs[i-1].Track != iv.Track {
			stack = stack[:0]
		}
		// Pop spans that ended before this one starts, and spans it only
		// partly overlaps: it is not nested in those.
		for len(stack) > 0 {
			top := &ivs[stack[len(stack)-1]]
			if top.End <= iv.Start || top.End < iv.End {
				stack = stack[:len(stack)-1]
				continue
			}
			break
		}
		if len(stack) > 0 {
			p := stack[len(stack)-1]
			from := max(iv.Start, covered[p], ivs[p].Start)
			if iv.End > from {
				child[p] += iv.End - from
				covered[p] = iv.End
			}
		}
		stack = append(stack, i)
	}
	for i := range ivs {
		iv := &ivs[i]
		d := time.Duration(iv.End - iv.Start)
		self := time.Duration(max(iv.End-iv.Start-child[i], 0))
		k := key{iv.Cat, iv.Name}
		r := rows[k]
		if r == nil {
			r = &SummaryRow{Cat: iv.Cat, Name: iv.Name, Min: d, Max: d}
			rows[k] = r
		}
		r.Calls++
		r.Total += d
		r.Self += self
		r.Min = min(r.Min, d)
		r.Max = max(r.Max, d)
		r.Flops += iv.Flops
		r.Bytes += iv.Bytes
		if iv.Cat != "handoff" { // time in a queue is not work
			sum.SelfTotal += self
		}
	}
	sum.Wall = time.Duration(last - first)
	for _, r := range rows {
		sum.Rows = append(sum.Rows, *r)
	}
	slices.SortFunc(sum.Rows, func(a, b SummaryRow) int {
		if c := cmp.Compare(b.Self, a.Self); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Cat, b.Cat); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return sum
}

// WriteText writes the table as aligned text.
func (s *Summary) WriteText(w io.Writer, title string) error {
	if title != "" {
		if _, err := fmt.Fprintf(w, "profile %s\n", title); err != nil {
			return err
		}
	}
	if _, err := fmt.Fprintf(w, "%d spans, wall %s ms, self total %s ms (hand-offs excluded)\n\n", s.Spans, fmtMS(s.Wall), fmtMS(s.SelfTotal)); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "kind\tname\tcalls\ttotal ms\tself ms\tmean ms\tmin ms\tmax ms\tshare\tGFLOP/s\tGB/s\t")
	for _, r := range s.Rows {
		gf, gb := "-", "-"
		if v := r.GFLOPS(); v > 0 {
			gf = fmt.Sprintf("%.2f", v)
		}
		if v := r.GBPS(); v > 0 {
			gb = fmt.Sprintf("%.2f", v)
		}
		share := "-"
		if r.Cat != "handoff" {
			share = fmt.Sprintf("%.1f%%", 100*s.Share(r))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			r.Cat, clip(r.Name, 60), r.Calls, fmtMS(r.Total), fmtMS(r.Self), fmtMS(r.Mean()),
			fmtMS(r.Min), fmtMS(r.Max), share, gf, gb)
	}
	return tw.Flush()
}

func fmtMS(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/1e6) }

func clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
