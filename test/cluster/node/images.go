package node

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"sigs.k8s.io/yaml"
)

// PauseImage is the sandbox image containerd 1.6 asks for.
const PauseImage = "registry.k8s.io/pause:3.6"

// Images names the images the cluster imports.
type Images struct {
	// Manager is the chart's default image (its values' repository, its appVersion as the
	// tag), built as the Dockerfile builds it: /manager and /elector, user 65532.
	Manager string
	// ManagerNext is the same image under another tag, ManagerNextTag, for a test of
	// helm upgrade's image change.
	ManagerNext, ManagerNextTag string
	// TestApp is the cluster tests' workload (test/cluster/testapp).
	TestApp string
	// Busybox is Debian's static busybox, for the samples that run a shell.
	Busybox string
}

// image is one single-layer image: files copied in, symlinks, the entrypoint and user.
type image struct {
	ref        string
	files      map[string]string // path in the image → file on this machine
	links      map[string]string // path in the image → target
	entrypoint []string
}

// importImages builds the images and imports them into the node's containerd. Nothing
// is pulled: pods use them with imagePullPolicy IfNotPresent or Never.
func (c *Cluster) importImages(ctx context.Context) error {
	var err error
	if c.Images, err = chartImages(c.Repo); err != nil {
		return err
	}
	out := c.path("images")
	bins := map[string]string{}
	for _, pkg := range []string{"cmd/manager", "cmd/elector", "test/cluster/pause", "test/cluster/testapp"} {
		if bins[filepath.Base(pkg)], err = buildStatic(ctx, c.Repo, out, pkg); err != nil {
			return err
		}
	}
	images := []image{
		{ref: PauseImage, files: map[string]string{"/pause": bins["pause"]}, entrypoint: []string{"/pause"}},
		{ref: c.Images.Manager, files: map[string]string{"/manager": bins["manager"], "/elector": bins["elector"]}, entrypoint: []string{"/manager"}},
		{ref: c.Images.ManagerNext, files: map[string]string{"/manager": bins["manager"], "/elector": bins["elector"]}, entrypoint: []string{"/manager"}},
		{ref: c.Images.TestApp, files: map[string]string{"/testapp": bins["testapp"]}, entrypoint: []string{"/testapp"}},
		busybox(c.Images.Busybox),
	}
	for _, img := range images {
		tarPath := filepath.Join(out, strings.NewReplacer("/", "_", ":", "_").Replace(img.ref)+".tar")
		if err := img.write(tarPath); err != nil {
			return fmt.Errorf("image %s: %w", img.ref, err)
		}
		if err := c.ctr("images", "import", tarPath); err != nil {
			return err
		}
	}
	return nil
}

// chartImages reads the manager's image from the chart, so that the cluster runs what
// a user who installs the chart with its defaults would.
func chartImages(repo string) (Images, error) {
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	var values struct {
		Image struct {
			Repository string `json:"repository"`
			Tag        string `json:"tag"`
		} `json:"image"`
	}
	dir := filepath.Join(repo, "charts", "election-manager")
	for file, into := range map[string]any{"Chart.yaml": &chart, "values.yaml": &values} {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			return Images{}, err
		}
		if err := yaml.Unmarshal(b, into); err != nil {
			return Images{}, fmt.Errorf("%s: %w", file, err)
		}
	}
	tag := values.Image.Tag
	if tag == "" {
		tag = chart.AppVersion
	}
	return Images{
		Manager:        values.Image.Repository + ":" + tag,
		ManagerNext:    values.Image.Repository + ":" + tag + "-next",
		ManagerNextTag: tag + "-next",
		TestApp:        "localhost/election-manager-testapp:dev",
		Busybox:        "docker.io/library/busybox:1.35",
	}, nil
}

// busybox is Debian's busybox-static (1.35), with the applets the samples use.
func busybox(ref string) image {
	img := image{ref: ref, files: map[string]string{"/bin/busybox": "/bin/busybox"}, links: map[string]string{}, entrypoint: []string{"/bin/sh"}}
	for _, applet := range []string{"sh", "wget", "grep", "sleep", "echo", "cat", "ls", "date"} {
		img.links["/bin/"+applet] = "busybox"
	}
	return img
}

// buildStatic builds a static binary of pkg, as the Dockerfile's builder stage does.
func buildStatic(ctx context.Context, repo, out, pkg string) (string, error) {
	bin := filepath.Join(out, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./"+pkg)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, msg)
	}
	return bin, nil
}

// write writes the image as a tarball ctr can import. Its config names the OS and the
// architecture: containerd skips an image without them.
func (img image) write(path string) error {
	layerTar, err := img.layer()
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil })
	if err != nil {
		return err
	}
	base, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cfg, err := base.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config = v1.Config{
		Entrypoint: img.entrypoint,
		User:       "65532:65532",
		Env:        []string{"PATH=/bin"},
		WorkingDir: "/",
	}
	out, err := mutate.ConfigFile(base, cfg)
	if err != nil {
		return err
	}
	tag, err := name.NewTag(img.ref)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(path, tag, out)
}

// layer is the image's one layer: /tmp, the files (executable) and the links.
func (img image) layer() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	addDir := func(d string) error {
		if d == "/" || dirs[d] {
			return nil
		}
		dirs[d] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d[1:] + "/", Mode: 0o755})
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777}); err != nil {
		return nil, err
	}
	for _, p := range sorted(img.files) {
		if err := addDir(filepath.Dir(p)); err != nil {
			return nil, err
		}
		b, err := os.ReadFile(img.files[p])
		if err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p[1:], Mode: 0o755, Size: int64(len(b))}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	for _, p := range sorted(img.links) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: p[1:], Linkname: img.links[p]}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func sorted(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
