package faults

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/election-manager/election-manager/internal/testutil"
)

// slack is added to every bound the checker applies: a loaded 2-core machine
// schedules processes late.
const slack = 5 * time.Second

// shortSteps is how many faults each of the short version's two seeds plans.
const shortSteps = 10

// TestFaults runs a schedule of faults against the live system and checks what
// every party recorded. FAULTS=N runs N faults from SEED (default: a random seed,
// printed), KINDS=a,b only those kinds; without FAULTS it is the short version make test runs: ten faults from
// seed 1, then ten from a random seed.
func TestFaults(t *testing.T) {
	logf.SetLogger(logr.Discard())
	plan, seeds, err := planFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d faults, seeds %s", len(plan), seeds)
	if _, err := testutil.AssetsDir(); err != nil {
		t.Skip(err)
	}
	dir, err := os.MkdirTemp("", "faults-run-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	bins, err := BuildBinaries(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := time.Now()
	sys, err := Start(ctx, dir, bins, t.Logf)
	if sys != nil {
		defer sys.Stop()
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := sys.Baseline(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("system up in %s", time.Since(started).Round(time.Millisecond))

	var settle time.Duration
	for _, spec := range groupSpecs {
		settle = max(settle, recoveryBound(*sys.groups[spec.name]))
	}
	settle += 2 * slack
	started = time.Now()
	skipped := sys.Run(ctx, plan, settle)
	t.Logf("%d faults injected (%d skipped) in %s", len(plan)-skipped, skipped, time.Since(started).Round(time.Second))
	settling := time.Now()
	if err := sys.Settle(ctx, settle); err != nil {
		t.Logf("after the last fault: %v", err)
	}
	t.Logf("settled in %s", time.Since(settling).Round(time.Millisecond))
	sys.CheckLeaks(ctx)
	stopping := time.Now()
	sys.Stop()
	t.Logf("stopped in %s", time.Since(stopping).Round(time.Millisecond))

	records := sys.Records(slack)
	res := Check(records)
	t.Logf("records: %d leading intervals, %d children, %d Lease versions, %d status versions, %d label changes, %d freezes; %d bursts of faults; the watches relisted %d times",
		len(records.Intervals), len(records.Runs), len(records.Leases), len(records.Statuses), len(records.Labels), len(records.Freezes),
		len(res.Recoveries), sys.watch.gaps)
	if n := len(res.AfterThaw); n > 0 {
		t.Logf("%d children of electors stopped past their deadline lived on while it was stopped, and at most %s after SIGCONT",
			n, slices.Max(res.AfterThaw).Round(time.Millisecond))
	}
	t.Logf("seeds %s\n%s", seeds, Format(Table(records, res), len(res.Violations)))
	for i, v := range res.Violations {
		if i == 50 {
			t.Errorf("... and %d more", len(res.Violations)-50)
			break
		}
		t.Errorf("VIOLATION %s", v)
	}
}

// planFromEnv reads FAULTS and SEED.
func planFromEnv() ([]Step, string, error) {
	random := rand.Int63n(1 << 31)
	n := os.Getenv("FAULTS")
	seedEnv := os.Getenv("SEED")
	seed := random
	if seedEnv != "" {
		var err error
		if seed, err = strconv.ParseInt(seedEnv, 10, 64); err != nil {
			return nil, "", fmt.Errorf("SEED=%q: %w", seedEnv, err)
		}
	}
	if n == "" {
		if seedEnv != "" {
			return Plan(seed, 2*shortSteps), fmt.Sprintf("%d (replay: SEED=%d)", seed, seed), nil
		}
		plan := append(Plan(1, shortSteps), Plan(random, shortSteps)...)
		return plan, fmt.Sprintf("1 and %d (replay the second: SEED=%d FAULTS=%d)", random, random, shortSteps), nil
	}
	count, err := strconv.Atoi(n)
	if err != nil || count < 1 {
		return nil, "", fmt.Errorf("FAULTS=%q: want a positive number", n)
	}
	if kinds := os.Getenv("KINDS"); kinds != "" {
		only := Only(kinds)
		if len(only) == 0 {
			return nil, "", fmt.Errorf("KINDS=%q names no fault kind", kinds)
		}
		return PlanOf(seed, count, only), fmt.Sprintf("%d of %s (replay: SEED=%d FAULTS=%d KINDS=%s)", seed, kinds, seed, count, kinds), nil
	}
	return Plan(seed, count), fmt.Sprintf("%d (replay: SEED=%d FAULTS=%d)", seed, seed, count), nil
}
