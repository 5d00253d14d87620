package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
)

// counters are Prometheus counter values summed by a key.
type counters map[string]float64

func (c counters) minus(old counters) counters {
	out := counters{}
	for k, v := range c {
		if d := v - old[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

func (c counters) total() (n float64) {
	for _, v := range c {
		n += v
	}
	return n
}

// apiRequests reads kube-apiserver's own apiserver_request_total, summed by
// "VERB resource[/subresource]": all requests, and those refused with a conflict
// (409: a write based on a version already gone, such as a takeover that lost the
// race). Requests for non-resource URLs (/metrics itself) are left out.
func apiRequests(ctx context.Context, cs kubernetes.Interface) (all, conflicts counters, err error) {
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("scraping kube-apiserver's metrics: %w", err)
	}
	all, conflicts = counters{}, counters{}
	err = eachSample(strings.NewReader(string(raw)), "apiserver_request_total", func(labels map[string]string, v float64) {
		if labels["resource"] == "" {
			return
		}
		key := labels["verb"] + " " + labels["resource"]
		if labels["subresource"] != "" {
			key += "/" + labels["subresource"]
		}
		all[key] += v
		if labels["code"] == "409" {
			conflicts[key] += v
		}
	})
	return all, conflicts, err
}

// reconciles reads controller_runtime_reconcile_total from a manager's metrics
// endpoint (plain HTTP on loopback), all controllers and results summed.
func reconciles(ctx context.Context, addr string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("scraping the manager's metrics: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	var n float64
	err = eachSample(resp.Body, "controller_runtime_reconcile_total", func(_ map[string]string, v float64) { n += v })
	return n, err
}

// eachSample hands f every sample of metric in the text exposition format.
func eachSample(r io.Reader, metric string, f func(labels map[string]string, v float64)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric+"{") && !strings.HasPrefix(line, metric+" ") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		labels := map[string]string{}
		if open := strings.IndexByte(line, '{'); open >= 0 {
			for _, kv := range strings.Split(line[open+1:strings.LastIndexByte(line[:sp], '}')], ",") {
				k, val, ok := strings.Cut(kv, "=")
				if ok {
					labels[k] = strings.Trim(val, `"`)
				}
			}
		}
		f(labels, v)
	}
	return sc.Err()
}

// cpuTime is a process's user + system CPU time, from /proc.
func cpuTime(pid int) (time.Duration, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * (time.Second / 100), nil // USER_HZ
}

// rssMiB is a process's resident set size, from /proc.
func rssMiB(pid int) (float64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// controlPlanePIDs finds kube-apiserver (by its port on the command line) and etcd
// (by its client URL's port, which kube-apiserver's --etcd-servers names).
func controlPlanePIDs(host string) (apiserver, etcd int) {
	u, err := url.Parse(host)
	if err != nil {
		return 0, 0
	}
	etcdPort := ""
	procs, _ := os.ReadDir("/proc")
	find := func(match func(cmd string) bool) int {
		for _, d := range procs {
			pid, err := strconv.Atoi(d.Name())
			if err != nil {
				continue
			}
			cmd, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
			if err == nil && match(strings.ReplaceAll(string(cmd), "\x00", " ")) {
				return pid
			}
		}
		return 0
	}
	apiserver = find(func(cmd string) bool {
		if !strings.Contains(cmd, "kube-apiserver") || !strings.Contains(cmd, "--secure-port="+u.Port()) {
			return false
		}
		if i := strings.Index(cmd, "--etcd-servers="); i >= 0 {
			servers := strings.Fields(cmd[i+len("--etcd-servers="):])[0]
			if eu, err := url.Parse(strings.Split(servers, ",")[0]); err == nil {
				etcdPort = eu.Port()
			}
		}
		return true
	})
	if etcdPort != "" {
		etcd = find(func(cmd string) bool {
			return strings.Contains(cmd, "etcd") && !strings.Contains(cmd, "kube-apiserver") &&
				strings.Contains(cmd, "127.0.0.1:"+etcdPort)
		})
	}
	return apiserver, etcd
}
