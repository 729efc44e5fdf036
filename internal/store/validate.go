package store

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
	"sigs.k8s.io/yaml"
)

// FieldError says what is wrong with one input field, in words for the user.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every bad field of one input. Nothing is stored when
// it is returned.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	return "invalid input: " + e.join(func(f FieldError) string { return f.Field + ": " + f.Message })
}

// Messages is every problem's message in one sentence, without the field
// names, for a person who did not fill the form (an approver).
func (e *ValidationError) Messages() string {
	return e.join(func(f FieldError) string { return f.Message })
}

func (e *ValidationError) join(text func(FieldError) string) string {
	msgs := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		msgs[i] = text(f)
	}
	return strings.Join(msgs, "; ")
}

// Add records a problem with field.
func (e *ValidationError) Add(field, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// For returns the message for field, or "".
func (e *ValidationError) For(field string) string {
	if e == nil {
		return ""
	}
	for _, f := range e.Fields {
		if f.Field == field {
			return f.Message
		}
	}
	return ""
}

// OrNil returns e when it holds problems and nil otherwise.
func (e *ValidationError) OrNil() error {
	if e == nil || len(e.Fields) == 0 {
		return nil
	}
	return e
}

// MaxVMNameLen leaves room for the suffixes KubeVirt and CDI add to derived
// object names (for example "-rootdisk") within a 63-character label value.
const MaxVMNameLen = 50

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// CheckVMName returns why name is not a usable VM name, or "".
func CheckVMName(name string) string {
	switch {
	case name == "":
		return "is required"
	case len(name) > MaxVMNameLen:
		return fmt.Sprintf("must be at most %d characters (it has %d)", MaxVMNameLen, len(name))
	case !dnsLabel.MatchString(name):
		return "must be lower-case letters, digits and '-', starting and ending with a letter or digit (a DNS-1123 label)"
	case name[0] >= '0' && name[0] <= '9':
		return "must start with a letter"
	}
	return ""
}

// MaxSSHKeyLen bounds an authorized_keys line; the longest common keys (RSA 16384) are under 3 KiB.
const MaxSSHKeyLen = 8192

// CheckSSHPublicKey returns why key is not one OpenSSH public key line, or "".
func CheckSSHPublicKey(key string) string {
	key = strings.TrimSpace(key)
	switch {
	case key == "":
		return "is required"
	case len(key) > MaxSSHKeyLen:
		return fmt.Sprintf("must be at most %d characters", MaxSSHKeyLen)
	case strings.Contains(key, "PRIVATE KEY"):
		return "looks like a private key; paste the public key (the .pub file) instead, and keep the private key secret"
	case strings.ContainsAny(key, "\r\n"):
		return "must be a single line, as in an authorized_keys file"
	}
	pk, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(key))
	if err != nil || len(strings.TrimSpace(string(rest))) > 0 {
		return "is not an OpenSSH public key (expected e.g. \"ssh-ed25519 AAAA… you@host\")"
	}
	switch pk.Type() {
	case ssh.KeyAlgoDSA:
		return "uses DSA, which current OpenSSH refuses; use an ed25519 or RSA key"
	}
	return ""
}

// MaxCloudInitLen is KubeVirt's limit for inline cloud-init user data.
const MaxCloudInitLen = 2048 * 1024

// CheckCloudConfig returns why data is not #cloud-config YAML, or "".
func CheckCloudConfig(data string) string {
	if data == "" {
		return ""
	}
	if len(data) > MaxCloudInitLen {
		return "must be at most 2 MiB"
	}
	if !strings.HasPrefix(data, "#cloud-config") {
		return "must start with the line #cloud-config"
	}
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(data), &doc); err != nil {
		return "is not valid YAML: " + YAMLMessage(err)
	}
	return ""
}

// YAMLMessage shortens a YAML parser error to what a person needs.
func YAMLMessage(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
	msg = strings.TrimPrefix(msg, "yaml: ")
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return msg
}

var (
	shortWord = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,39}$`)
	unixUser  = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
)

// reservedTemplateNames would collide with the pages under /platform/templates/.
var reservedTemplateNames = []string{"new", "import", "preview"}

var imageRef = regexp.MustCompile(`^[a-z0-9]+([._/:@-][a-zA-Z0-9_.-]+)+$`)

// Validate checks a template spec; every problem is named by its field.
func (t TemplateSpec) Validate() error {
	v := &ValidationError{}
	if msg := checkName(t.Name); msg != "" {
		v.Add("name", "%s", msg)
	} else if slices.Contains(reservedTemplateNames, t.Name) {
		v.Add("name", "%q is reserved for a page of the portal; choose another name", t.Name)
	}
	switch {
	case strings.TrimSpace(t.DisplayName) == "":
		v.Add("displayName", "is required")
	case len(t.DisplayName) > 80:
		v.Add("displayName", "must be at most 80 characters")
	}
	if len(t.Description) > 1000 {
		v.Add("description", "must be at most 1000 characters")
	}
	switch {
	case t.OSFamily == "":
		v.Add("osFamily", "is required")
	case !shortWord.MatchString(t.OSFamily):
		v.Add("osFamily", "must be a short lower-case word such as ubuntu or fedora")
	}
	if t.Logo != "" && !shortWord.MatchString(t.Logo) {
		v.Add("logo", "must be the name of a logo such as ubuntu, or empty for the OS family's logo")
	}
	switch {
	case t.SSHUser == "":
		v.Add("sshUser", "is required (the user cloud-init gives the SSH key to)")
	case !unixUser.MatchString(t.SSHUser):
		v.Add("sshUser", "must be a Linux user name (lower-case letters, digits, '_' and '-', up to 32 characters)")
	}
	n := 0
	img := t.Image
	if img.ContainerDisk != "" {
		n++
		if !imageRef.MatchString(img.ContainerDisk) {
			v.Add("image.containerDisk", "is not an image reference (expected e.g. quay.io/containerdisks/fedora:41)")
		}
	}
	if img.Registry != "" {
		n++
		if !strings.HasPrefix(img.Registry, "docker://") || !imageRef.MatchString(strings.TrimPrefix(img.Registry, "docker://")) {
			v.Add("image.registry", "must be docker://<image reference>")
		}
	}
	if img.HTTP != "" {
		n++
		if u, err := url.Parse(img.HTTP); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.Add("image.http", "must be an http:// or https:// URL")
		}
	}
	if img.DataSource != nil {
		n++
		if checkName(img.DataSource.Name) != "" || checkName(img.DataSource.Namespace) != "" {
			v.Add("image.dataSource", "needs a namespace and a name, both DNS-1123 labels")
		}
	}
	if n != 1 {
		v.Add("image", "set exactly one of containerDisk, registry, http or dataSource")
	}
	if n == 1 && img.ContainerDisk == "" && t.RootDiskGiB <= 0 {
		v.Add("rootDiskGiB", "is required for a DataVolume image source")
	}
	if t.RootDiskGiB < 0 || t.RootDiskGiB > 4096 {
		v.Add("rootDiskGiB", "must be between 1 and 4096")
	}
	if len(t.Sizes) == 0 {
		v.Add("sizes", "at least one size is required")
	}
	seen := map[string]bool{}
	for i, s := range t.Sizes {
		f := fmt.Sprintf("sizes[%d]", i)
		if checkName(s.Name) != "" {
			v.Add(f+".name", "must be a short lower-case name such as small")
		}
		if seen[s.Name] {
			v.Add(f+".name", "%q is used twice", s.Name)
		}
		seen[s.Name] = true
		switch {
		case s.Instancetype != "" && (s.CPU != 0 || s.MemoryMiB != 0) && u1[s.Instancetype] != [2]int{}:
			v.Add(f, "set either an instancetype or cpu and memoryMiB, not both")
		case s.Instancetype != "":
			if _, ok := u1[s.Instancetype]; !ok && (s.CPU <= 0 || s.MemoryMiB <= 0) {
				v.Add(f+".instancetype", "%q is not a known u1 instancetype; also give cpu and memoryMiB so quotas can count it", s.Instancetype)
			}
		default:
			if s.CPU < 1 || s.CPU > 64 {
				v.Add(f+".cpu", "must be between 1 and 64")
			}
			if s.MemoryMiB < 128 || s.MemoryMiB > 512*1024 {
				v.Add(f+".memoryMiB", "must be between 128 and 524288")
			}
			if s.Preference != "" {
				v.Add(f+".preference", "a preference goes with an instancetype")
			}
		}
	}
	if msg := CheckCloudConfig(t.CloudInit); msg != "" {
		v.Add("cloudInit", "%s", msg)
	}
	if t.MaxLeaseDays < 1 || t.MaxLeaseDays > 365 {
		v.Add("maxLeaseDays", "must be between 1 and 365")
	}
	if t.MaxAutoReplicas < 0 || t.MaxAutoReplicas > MaxPoolReplicas {
		v.Add("maxAutoReplicas", "must be between 0 (the default, %d) and %d", DefaultMaxAutoReplicas, MaxPoolReplicas)
	}
	for i, team := range t.Teams {
		switch {
		case checkName(team) != "":
			v.Add(fmt.Sprintf("teams[%d]", i), "%q is not a team name", team)
		case slices.Index(t.Teams, team) < i:
			v.Add(fmt.Sprintf("teams[%d]", i), "%q is listed twice", team)
		}
	}
	switch {
	case len(t.Tags) > 20:
		v.Add("tags", "at most 20 tags")
	case slices.ContainsFunc(t.Tags, func(s string) bool { return s == "" || len(s) > 40 }):
		v.Add("tags", "each tag must be 1 to 40 characters")
	default:
		for i, tag := range t.Tags {
			if slices.Index(t.Tags, tag) < i {
				v.Add("tags", "%q is listed twice", tag)
				break
			}
		}
	}
	return v.OrNil()
}

func checkName(s string) string {
	if s == "" {
		return "is required"
	}
	if len(s) > 63 || !dnsLabel.MatchString(s) {
		return "must be a DNS-1123 label (lower-case letters, digits and '-')"
	}
	return ""
}
