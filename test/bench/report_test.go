package bench

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// result is one run's numbers.
type result struct {
	impl    string
	groups  int
	timings timings
	steady  time.Duration

	allLed, allShown         time.Duration
	released, shown, crashed []time.Duration
	// released->new, split where the time went: the release write (sent -> seen),
	// the taker's reaction (release seen -> takeover sent), the takeover write.
	releaseWrite, takerReact, takerWrite []time.Duration
	stopSpan                             time.Duration // SIGTERM -> the last release seen
	lost                                 int
	sentPerSec                           [2]int   // Lease writes by the second of their renewTime: median, most
	incomplete                           bool     // a phase timed out: its numbers leave out what never happened
	requests                             counters // per group per minute, steady window
	hasStatus                            bool
	statusPerMin                         float64
	statusPerTransition                  float64
	refusedPerTransition                 float64 // Lease writes refused with a conflict: races lost
	reconcilesPerSec                     float64
	cpuPct, rssMiB                       float64 // the three members: CPU summed, RSS the largest
	apiserverPct, etcdPct                float64
}

// printTable prints one column per run, one row per measure.
func printTable(out io.Writer, c config, results []*result) {
	if len(results) == 0 {
		return
	}
	fmt.Fprintf(out, "\nScale benchmark: 3 candidate processes, every one in every group; steady window %s; machine: %d CPUs\n",
		c.steady, runtime.NumCPU())
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	row := func(name string, f func(r *result) string) {
		cells := []string{name}
		for _, r := range results {
			cells = append(cells, f(r))
		}
		fmt.Fprintln(w, strings.Join(cells, "\t")+"\t")
	}
	row("", func(r *result) string { return fmt.Sprintf("%s, %d groups", r.impl, r.groups) })
	row("complete", func(r *result) string {
		if r.incomplete {
			return "NO (timed out)"
		}
		return "yes"
	})
	row("timings lease/renew/retry", func(r *result) string { return r.timings.String() })
	row("all led after create, s", func(r *result) string { return secs(r.allLed) })
	row("all shown in status, s", func(r *result) string { return ifStatus(r, secs(r.allShown)) })
	row("steady: leaderships lost", func(r *result) string { return fmt.Sprint(r.lost) })
	row("steady: Lease writes sent/s p50/max", func(r *result) string { return fmt.Sprintf("%d/%d", r.sentPerSec[0], r.sentPerSec[1]) })
	row("steady: requests/group/min", func(r *result) string { return fmt.Sprintf("%.1f", r.requests.total()) })
	for _, k := range requestKeys(results) {
		row("  "+k, func(r *result) string {
			if r.requests[k] == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f", r.requests[k])
		})
	}
	row("steady: status writes/min", func(r *result) string { return ifStatus(r, fmt.Sprintf("%.1f", r.statusPerMin)) })
	row("steady: reconciles/s (3 managers)", func(r *result) string { return ifStatus(r, fmt.Sprintf("%.1f", r.reconcilesPerSec)) })
	row("steady: CPU % (3 processes)", func(r *result) string { return fmt.Sprintf("%.0f", r.cpuPct) })
	row("steady: RSS MiB (largest)", func(r *result) string { return fmt.Sprintf("%.0f", r.rssMiB) })
	row("steady: kube-apiserver CPU %", func(r *result) string { return fmt.Sprintf("%.0f", r.apiserverPct) })
	row("steady: etcd CPU %", func(r *result) string { return fmt.Sprintf("%.0f", r.etcdPct) })
	row("stop: groups handed on", func(r *result) string { return fmt.Sprint(len(r.released)) })
	row("stop: released->new ms p50/p90/p99/max", func(r *result) string { return millis(r.released) })
	row("  last release seen after SIGTERM, s", func(r *result) string { return secs(r.stopSpan) })
	row("  release sent->seen ms", func(r *result) string { return millis(r.releaseWrite) })
	row("  release seen->takeover sent ms", func(r *result) string { return millis(r.takerReact) })
	row("  takeover sent->seen ms", func(r *result) string { return millis(r.takerWrite) })
	row("stop: new->status ms p50/p90/p99/max", func(r *result) string { return ifStatus(r, millis(r.shown)) })
	row("stop: status writes/transition", func(r *result) string { return ifStatus(r, fmt.Sprintf("%.1f", r.statusPerTransition)) })
	row("stop: refused Lease writes/transition", func(r *result) string { return fmt.Sprintf("%.2f", r.refusedPerTransition) })
	row("kill: groups taken over", func(r *result) string { return fmt.Sprint(len(r.crashed)) })
	row("kill: last renewal->new s p50/p90/p99/max", func(r *result) string { return seconds(r.crashed) })
	row("kill: beyond leaseDuration ms p50/p99/max", func(r *result) string {
		if len(r.crashed) == 0 {
			return "-"
		}
		over := func(p float64) string { return fmt.Sprint((percentile(r.crashed, p) - r.timings.lease).Milliseconds()) }
		return over(.5) + "/" + over(.99) + "/" + over(1)
	})
	_ = w.Flush()
}

func ifStatus(r *result, s string) string {
	if !r.hasStatus {
		return "n/a"
	}
	return s
}

// requestKeys are the verb+resource pairs any run sent at ≥ 0.01 per group per minute.
func requestKeys(results []*result) []string {
	seen := map[string]bool{}
	for _, r := range results {
		for k, v := range r.requests {
			if v >= 0.01 {
				seen[k] = true
			}
		}
	}
	var out []string
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// secs prints a phase's duration; zero is a phase that timed out.
func secs(d time.Duration) string {
	if d == 0 {
		return "timed out"
	}
	return fmt.Sprintf("%.2f", d.Seconds())
}

func millis(ds []time.Duration) string {
	return quantiles(ds, func(d time.Duration) string { return fmt.Sprint(d.Milliseconds()) })
}

func seconds(ds []time.Duration) string {
	return quantiles(ds, func(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) })
}

func quantiles(ds []time.Duration, f func(time.Duration) string) string {
	if len(ds) == 0 {
		return "-"
	}
	return f(percentile(ds, .5)) + "/" + f(percentile(ds, .9)) + "/" + f(percentile(ds, .99)) + "/" + f(percentile(ds, 1))
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(p*float64(len(s)-1)+0.5)]
}

func download(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
