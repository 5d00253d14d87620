package node

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// createBridge makes the pods' bridge before anything starts: its address is where the
// API server and the kubelet listen. The CNI bridge plugin finds it and uses it.
// ServiceCIDR is routed onto it too: a packet to a cluster IP that kube-proxy has not
// rewritten (yet) must stay on this machine, not follow the default route out.
func (c *Cluster) createBridge(context.Context) error {
	for _, args := range [][]string{
		{"link", "add", Bridge, "type", "bridge"},
		{"addr", "add", Gateway + "/16", "dev", Bridge},
		{"link", "set", Bridge, "up"},
		{"route", "add", ServiceCIDR, "dev", Bridge},
	} {
		if err := run("ip", args...); err != nil {
			return err
		}
	}
	return c.writeCNIConfig()
}

// writeCNIConfig is the one network containerd gives pods: the bridge, host-local
// addresses from PodCIDR, portmap and loopback.
func (c *Cluster) writeCNIConfig() error {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "election-manager-cluster",
		"plugins": []map[string]any{
			{
				"type": "bridge", "bridge": Bridge, "isGateway": true, "ipMasq": false, "hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": PodCIDR, "gateway": Gateway}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": c.path("cni", "ipam"),
				},
			},
			{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
			{"type": "loopback"},
		},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.path("cni", "net.d"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(c.path("cni", "net.d", "10-election-manager.conflist"), b, 0o644)
}

func (c *Cluster) deleteBridge() error {
	if _, err := os.Stat("/sys/class/net/" + Bridge); err != nil {
		return nil
	}
	return run("ip", "link", "delete", Bridge)
}

// cleanupProxyRules removes the iptables chains kube-proxy made.
func (c *Cluster) cleanupProxyRules() error {
	bin := filepath.Join(c.Bin, "kube-proxy")
	if _, err := os.Stat(bin); err != nil {
		return nil
	}
	return run(bin, "--cleanup", "--proxy-mode", "iptables")
}

// cleanupKubeletRules removes the chains the kubelet makes (its canaries, the hint for
// iptables' mode, and KUBE-FIREWALL with the jumps to it), in both address families.
func cleanupKubeletRules() error {
	for _, ipt := range []string{"iptables", "ip6tables"} {
		for _, chain := range []string{"INPUT", "OUTPUT"} {
			for run(ipt, "-t", "filter", "-D", chain, "-j", "KUBE-FIREWALL") == nil {
			}
		}
		for _, tc := range [][2]string{{"filter", "KUBE-FIREWALL"}, {"filter", "KUBE-KUBELET-CANARY"},
			{"nat", "KUBE-KUBELET-CANARY"}, {"mangle", "KUBE-KUBELET-CANARY"}, {"mangle", "KUBE-IPTABLES-HINT"}} {
			if run(ipt, "-t", tc[0], "-F", tc[1]) == nil {
				if err := run(ipt, "-t", tc[0], "-X", tc[1]); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// unmountAll unmounts what the kubelet and containerd mounted under the cluster's
// directories (volumes, rootfs, shm), deepest first.
func (c *Cluster) unmountAll() error {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return err
	}
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		p := strings.ReplaceAll(f[1], `\040`, " ")
		for _, root := range []string{c.Dir, RunDir} {
			if root != "" && (p == root || strings.HasPrefix(p, root+"/")) {
				mounts = append(mounts, p)
			}
		}
	}
	var last error
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := syscall.Unmount(mounts[i], syscall.MNT_DETACH); err != nil && err != syscall.EINVAL {
			last = err
		}
	}
	return last
}
