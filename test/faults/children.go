package faults

import (
	"path/filepath"
	"time"

	"github.com/election-manager/election-manager/internal/testutil"
)

// newChildren collects the External group's children's own records (see
// testutil.Children), kept in dir with the processes' logs.
func newChildren(dir string) (*testutil.Children, error) {
	return testutil.NewChildren(filepath.Join(dir, "children.log"))
}

// childRuns reads every child's life so far as the checker's Runs of group ext;
// offset converts the children's CLOCK_MONOTONIC to wall-clock time (wall - mono).
func childRuns(c *testutil.Children, offset int64) []Run {
	runs, err := c.Runs()
	if err != nil {
		return nil
	}
	out := make([]Run, 0, len(runs))
	for _, cr := range runs {
		r := Run{Group: "ext", Holder: cr.Holder, Epoch: cr.Epoch, Pid: cr.Pid, Start: time.Unix(0, cr.Start+offset)}
		if cr.End != 0 {
			r.End = time.Unix(0, cr.End+offset)
		}
		out = append(out, r)
	}
	return out
}
