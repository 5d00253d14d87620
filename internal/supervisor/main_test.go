package supervisor

import (
	"os"
	"testing"
)

// TestMain lets this test binary serve as the guardian of the children it starts.
func TestMain(m *testing.M) {
	MaybeRunGuardian()
	os.Exit(m.Run())
}
