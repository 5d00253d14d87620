package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const containerdSocket = RunDir + "/containerd.sock"

// containerdConfig is the distribution's containerd with the settings this machine
// needs: a sandbox image of our own, restrict_oom_score_adj (no CAP_SYS_RESOURCE here:
// the kubelet's -998 for sandboxes makes runc fail), and Debian's CNI plugin directory.
const containerdConfig = `version = 2
root = %q
state = %q
[grpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
`

func (c *Cluster) startContainerd(ctx context.Context) error {
	cfg := fmt.Sprintf(containerdConfig, c.path("containerd"), RunDir+"/containerd-state",
		containerdSocket, PauseImage, c.path("cni", "net.d"))
	if err := os.WriteFile(c.path("containerd.toml"), []byte(cfg), 0o644); err != nil {
		return err
	}
	if err := c.start("containerd", "containerd", "--config", c.path("containerd.toml")); err != nil {
		return err
	}
	return c.poll(ctx, "containerd answering", "containerd", 30*time.Second, func(context.Context) (bool, error) {
		return c.ctr("version") == nil, nil
	})
}

// ctr runs containerd's own client against the cluster's containerd, in the kubelet's
// namespace.
func (c *Cluster) ctr(args ...string) error {
	return run("ctr", append([]string{"--address", containerdSocket, "--namespace", "k8s.io"}, args...)...)
}

// KillContainer sends sig (e.g. "SIGKILL") to a container's main process, as the
// kernel's OOM killer or a crash would: the kubelet only sees it die.
func (c *Cluster) KillContainer(id, sig string) error {
	return c.ctr("tasks", "kill", "--signal", sig, id)
}

// removeContainers stops and removes every pod sandbox through the CRI, as the kubelet
// would: that also tears down their network namespaces and returns their addresses.
func (c *Cluster) removeContainers() error {
	if c.Pid("containerd") == 0 {
		return nil
	}
	conn, err := grpc.NewClient("unix://"+containerdSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("listing pod sandboxes: %w", err)
	}
	var errs []error
	for _, s := range list.Items {
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: s.Id}); err != nil {
			errs = append(errs, err)
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: s.Id}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
