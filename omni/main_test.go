package omni

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/omniflow-go/omniflow/profiler"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// noProfiler returns a profiler that records nothing unless started (no
// folder, no sinks), so tests do not pick up the environment's settings.
func noProfiler(t testing.TB) *profiler.Profiler {
	t.Helper()
	p, err := profiler.New()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
