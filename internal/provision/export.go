package provision

import (
	"archive/zip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	virtv1 "kubevirt.io/api/core/v1"
	poolv1 "kubevirt.io/api/pool/v1beta1"
	"sigs.k8s.io/yaml"

	"paddock/internal/store"
)

// ExportFile is one file of an export of manifests.
type ExportFile struct {
	Name string
	Data []byte
}

// KustomizationFile names the file that lists an export's manifests.
const KustomizationFile = "kustomization.yaml"

// Export turns a team's VMs and pools (requests with the manifests they
// were created from) into a folder for Kustomize or a GitOps tool: one
// VirtualMachine or VirtualMachinePool (at its current replicas) per file,
// named after it, with Paddock's labels kept and server-set fields
// (status, uid, resourceVersion, …) removed, and a kustomization.yaml that
// lists them. Each manifest is parsed and written again; a stored manifest
// that is not a VirtualMachine is left out (and named in a comment) rather
// than written as a broken file.
func Export(team string, rs []store.Request) ([]ExportFile, error) {
	var files []ExportFile
	used := map[string]bool{KustomizationFile: true}
	var names, skipped []string
	for _, r := range rs {
		if r.VM == nil || r.VM.Manifest == "" {
			continue
		}
		objName, m, err := exportManifest(r)
		if err != nil {
			return nil, err
		}
		if objName == "" {
			skipped = append(skipped, fmt.Sprintf("request %d (%s): its recorded manifest is not a VirtualMachine", r.ID, r.Name))
			continue
		}
		name := objName + ".yaml"
		if used[name] {
			name = objName + "-" + strconv.FormatInt(r.ID, 10) + ".yaml"
		}
		used[name] = true
		names = append(names, name)
		files = append(files, ExportFile{Name: name, Data: []byte(m)})
	}
	var k strings.Builder
	fmt.Fprintf(&k, "# The VirtualMachines of team %s, exported by Paddock.\n", team)
	for _, sk := range skipped {
		fmt.Fprintf(&k, "# Left out: %s.\n", sk)
	}
	k.WriteString("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n")
	if len(names) == 0 {
		k.WriteString("resources: []\n")
	} else {
		k.WriteString("resources:\n")
		for _, n := range names {
			fmt.Fprintf(&k, "  - %s\n", n)
		}
	}
	return append(files, ExportFile{Name: KustomizationFile, Data: []byte(k.String())}), nil
}

// exportManifest parses a request's recorded manifest (a VirtualMachine, or
// for a pool a VirtualMachinePool, given the pool's current replicas) and
// writes it again without server-set fields. An empty name means the
// manifest is neither.
func exportManifest(r store.Request) (name, manifest string, err error) {
	var kind struct {
		Kind string `json:"kind"`
	}
	_ = yaml.Unmarshal([]byte(r.VM.Manifest), &kind)
	if kind.Kind == poolv1.VirtualMachinePoolKind {
		var p poolv1.VirtualMachinePool
		if err := yaml.UnmarshalStrict([]byte(r.VM.Manifest), &p); err != nil || p.Name == "" {
			return "", "", nil
		}
		if r.Pool && r.Replicas > 0 {
			n := int32(r.Replicas)
			p.Spec.Replicas = &n
		}
		m, err := PoolManifest(&p)
		return p.Name, m, err
	}
	var vm virtv1.VirtualMachine
	if err := yaml.UnmarshalStrict([]byte(r.VM.Manifest), &vm); err != nil || vm.Kind != "VirtualMachine" || vm.Name == "" {
		return "", "", nil
	}
	m, err := Manifest(&vm)
	return vm.Name, m, err
}

// WriteZip writes files into a zip archive under folder dir.
func WriteZip(w io.Writer, dir string, files []ExportFile) error {
	z := zip.NewWriter(w)
	for _, f := range files {
		fw, err := z.Create(dir + "/" + f.Name)
		if err != nil {
			return fmt.Errorf("zip %s: %w", f.Name, err)
		}
		if _, err := fw.Write(f.Data); err != nil {
			return fmt.Errorf("zip %s: %w", f.Name, err)
		}
	}
	if err := z.Close(); err != nil {
		return fmt.Errorf("zip: %w", err)
	}
	return nil
}

// WriteDir writes files into directory dir, creating it when missing.
func WriteDir(dir string, files []ExportFile) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", f.Name, err)
		}
	}
	return nil
}
