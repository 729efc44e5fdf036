// Package provision turns approved requests into KubeVirt VirtualMachines and
// cluster changes back into request states: Render (pure), the River workers,
// the watcher, and the Cluster with its real and simulated backends.
package provision

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	virtv1 "kubevirt.io/api/core/v1"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	"sigs.k8s.io/yaml"

	"paddock/internal/store"
)

// Labels Paddock puts on every object it creates. The watcher selects on
// LabelManagedBy; LabelRequest ties an object to its request, so a retried job
// recognises its own VM.
const (
	LabelManagedBy       = "app.kubernetes.io/managed-by"
	ManagedByValue       = "paddock"
	LabelRequest         = "paddock.dev/request-id"
	LabelTemplate        = "paddock.dev/template"
	LabelTemplateVersion = "paddock.dev/template-version"
	LabelTeam            = "paddock.dev/team"
	LabelOwner           = "paddock.dev/owner"
	AnnotationOwner      = "paddock.dev/owner"
	AnnotationRequester  = "paddock.dev/justification"
)

const (
	rootDisk     = "rootdisk"
	cloudInitVol = "cloudinitdisk"
)

// Render builds the VirtualMachine for a request from the template version it
// pins. It is pure: the same inputs give the same object, byte for byte.
//
// It also satisfies what KubeVirt's admission webhooks check and the CRD
// schema does not: every disk has a volume of the same name, runStrategy is
// set and spec.running is not, and no CPU or memory is set in the domain when
// an instancetype is referenced.
func Render(spec store.TemplateSpec, r store.Request) (*virtv1.VirtualMachine, error) {
	size, ok := spec.Size(r.Size)
	if !ok {
		return nil, fmt.Errorf("template %s has no size %q", spec.Name, r.Size)
	}
	userData, err := CloudInit(spec, r)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{
		LabelManagedBy:       ManagedByValue,
		LabelRequest:         strconv.FormatInt(r.ID, 10),
		LabelTemplate:        spec.Name,
		LabelTemplateVersion: strconv.Itoa(r.TemplateVersion),
		LabelTeam:            r.TeamName,
		LabelOwner:           labelValue(r.RequesterLogin),
	}
	vmiLabels := map[string]string{
		LabelManagedBy:       ManagedByValue,
		LabelRequest:         labels[LabelRequest],
		"kubevirt.io/domain": r.Name,
	}
	always := virtv1.RunStrategyAlways
	vm := &virtv1.VirtualMachine{
		TypeMeta: metav1.TypeMeta{APIVersion: virtv1.GroupVersion.String(), Kind: "VirtualMachine"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        r.Name,
			Namespace:   r.Namespace,
			Labels:      labels,
			Annotations: map[string]string{AnnotationOwner: r.RequesterLogin},
		},
		Spec: virtv1.VirtualMachineSpec{
			RunStrategy: &always,
			Template: &virtv1.VirtualMachineInstanceTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: vmiLabels},
				Spec: virtv1.VirtualMachineInstanceSpec{
					Domain: virtv1.DomainSpec{
						Devices: virtv1.Devices{
							Disks: []virtv1.Disk{
								{Name: rootDisk, DiskDevice: virtv1.DiskDevice{Disk: &virtv1.DiskTarget{Bus: virtv1.DiskBusVirtio}}},
								{Name: cloudInitVol, DiskDevice: virtv1.DiskDevice{Disk: &virtv1.DiskTarget{Bus: virtv1.DiskBusVirtio}}},
							},
							Interfaces: []virtv1.Interface{{
								Name:                   "default",
								InterfaceBindingMethod: virtv1.InterfaceBindingMethod{Masquerade: &virtv1.InterfaceMasquerade{}},
							}},
						},
					},
					Networks: []virtv1.Network{{Name: "default", NetworkSource: virtv1.NetworkSource{Pod: &virtv1.PodNetwork{}}}},
					Volumes: []virtv1.Volume{
						{Name: rootDisk},
						{Name: cloudInitVol, VolumeSource: virtv1.VolumeSource{
							CloudInitNoCloud: &virtv1.CloudInitNoCloudSource{UserData: userData},
						}},
					},
				},
			},
		},
	}
	if size.Instancetype != "" {
		vm.Spec.Instancetype = &virtv1.InstancetypeMatcher{Kind: "VirtualMachineClusterInstancetype", Name: size.Instancetype}
		if size.Preference != "" {
			vm.Spec.Preference = &virtv1.PreferenceMatcher{Kind: "VirtualMachineClusterPreference", Name: size.Preference}
		}
	} else {
		mem := resource.MustParse(strconv.Itoa(size.MemoryMiB) + "Mi")
		vm.Spec.Template.Spec.Domain.CPU = &virtv1.CPU{Cores: uint32(size.CPU)}
		vm.Spec.Template.Spec.Domain.Memory = &virtv1.Memory{Guest: &mem}
	}

	root := &vm.Spec.Template.Spec.Volumes[0]
	img := spec.Image
	if img.ContainerDisk != "" {
		root.ContainerDisk = &virtv1.ContainerDiskSource{Image: img.ContainerDisk}
		return vm, nil
	}
	dvName := DataVolumeName(r.Name)
	root.DataVolume = &virtv1.DataVolumeSource{Name: dvName}
	storage := resource.MustParse(strconv.Itoa(spec.RootDiskGiB) + "Gi")
	dv := virtv1.DataVolumeTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Name: dvName, Labels: map[string]string{
			LabelManagedBy: ManagedByValue,
			LabelRequest:   labels[LabelRequest],
		}},
		Spec: cdiv1.DataVolumeSpec{
			Storage: &cdiv1.StorageSpec{Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: storage},
			}},
		},
	}
	switch {
	case img.Registry != "":
		url := img.Registry
		dv.Spec.Source = &cdiv1.DataVolumeSource{Registry: &cdiv1.DataVolumeSourceRegistry{URL: &url}}
	case img.HTTP != "":
		dv.Spec.Source = &cdiv1.DataVolumeSource{HTTP: &cdiv1.DataVolumeSourceHTTP{URL: img.HTTP}}
	case img.DataSource != nil:
		ns := img.DataSource.Namespace
		dv.Spec.SourceRef = &cdiv1.DataVolumeSourceRef{Kind: cdiv1.DataVolumeDataSource, Namespace: &ns, Name: img.DataSource.Name}
	default:
		return nil, fmt.Errorf("template %s has no image source", spec.Name)
	}
	vm.Spec.DataVolumeTemplates = []virtv1.DataVolumeTemplateSpec{dv}
	return vm, nil
}

// DataVolumeName is the name of a VM's root-disk DataVolume.
func DataVolumeName(vmName string) string { return vmName + "-rootdisk" }

// CloudInit merges the template's #cloud-config with what the request adds:
// the owner's SSH key for the template's user, and the hostname.
func CloudInit(spec store.TemplateSpec, r store.Request) (string, error) {
	doc := map[string]any{}
	if spec.CloudInit != "" {
		if err := yaml.Unmarshal([]byte(spec.CloudInit), &doc); err != nil {
			return "", fmt.Errorf("template %s cloud-init: %w", spec.Name, err)
		}
		if doc == nil {
			doc = map[string]any{}
		}
	}
	keys, _ := doc["ssh_authorized_keys"].([]any)
	doc["ssh_authorized_keys"] = append(keys, strings.TrimSpace(r.SSHPublicKey))
	if !r.Pool {
		// A pool's members each take their own name as hostname.
		doc["hostname"] = r.Name
	}
	if _, ok := doc["user"]; !ok {
		doc["user"] = spec.SSHUser
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("encode cloud-init: %w", err)
	}
	return "#cloud-config\n" + string(out), nil
}

var nullTimestamp = regexp.MustCompile(`(?m)^ *creationTimestamp: null\n`)

var notLabel = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// labelValue turns s (a login, perhaps an e-mail address) into a valid label value.
func labelValue(s string) string {
	v := notLabel.ReplaceAllString(s, "_")
	if len(v) > 63 {
		v = v[:63]
	}
	return strings.Trim(v, "._-")
}

// Manifest renders a VirtualMachine as YAML, without server-set fields.
func Manifest(vm *virtv1.VirtualMachine) (string, error) {
	c := vm.DeepCopy()
	c.APIVersion, c.Kind = virtv1.GroupVersion.String(), "VirtualMachine"
	c.ResourceVersion, c.UID, c.Generation, c.ManagedFields = "", "", 0, nil
	c.CreationTimestamp = metav1.Time{}
	c.Status = virtv1.VirtualMachineStatus{}
	b, err := yaml.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode manifest: %w", err)
	}
	// Drop the empty status and creationTimestamps the API types emit.
	s := strings.Replace(string(b), "\nstatus: {}\n", "\n", 1)
	return nullTimestamp.ReplaceAllString(s, ""), nil
}
