package audio

import (
	"testing"

	"go.uber.org/goleak"
)

// Compute runs its frames on goroutines; none may outlive it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
