package node

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// preflight names, in one line, the first piece this machine lacks, instead of letting
// a later step hang on it.
func preflight(cfg Config) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("root is required: containerd, iptables and the pods' network namespaces need it")
	}
	for _, cmd := range []string{"containerd", "runc", "ctr", "iptables", "conntrack", "ip", "go"} {
		if _, err := exec.LookPath(cmd); err != nil {
			return fmt.Errorf("%s is not installed (Debian: apt-get install containerd runc containernetworking-plugins iptables conntrack iproute2)", cmd)
		}
	}
	for _, plugin := range []string{"bridge", "host-local", "portmap", "loopback"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cni", plugin)); err != nil {
			return fmt.Errorf("the CNI plugin %s is not in /usr/lib/cni (Debian: apt-get install containernetworking-plugins)", plugin)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		return fmt.Errorf("/bin/busybox is missing (Debian: apt-get install busybox-static)")
	}
	for _, bin := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"} {
		if _, err := os.Stat(filepath.Join(cfg.Bin, bin)); err != nil {
			return fmt.Errorf("%s is not in %s: run make cluster, which builds it", bin, cfg.Bin)
		}
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err != nil {
		if _, err2 := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err2 != nil {
			return fmt.Errorf("no cgroup hierarchy at /sys/fs/cgroup: the kubelet cannot run pods")
		}
	}
	return nil
}
