package web

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"paddock/internal/provision"
	"paddock/internal/store"
)

// requestPreflight asks the cluster, by a server-side dry run, whether it
// would accept the VirtualMachine the request form describes, before
// anything is stored. It answers with a fragment for the form.
func (s *Server) requestPreflight(w http.ResponseWriter, r *http.Request) error {
	u, _ := userFrom(r.Context())
	if !canRequest(u) {
		return errStatus(http.StatusForbidden, "You are not in a team, so you cannot request VMs.")
	}
	if err := r.ParseForm(); err != nil {
		return errStatus(http.StatusBadRequest, "The form could not be read; it may be too large.")
	}
	ok, msg, err := s.preflight(r, u)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return render(w, r, http.StatusOK, preflightResult(ok, msg))
}

func (s *Server) preflight(r *http.Request, u store.User) (bool, string, error) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	if m := store.CheckVMName(name); m != "" {
		return false, "Fix the VM name first: it " + m + ".", nil
	}
	key := strings.TrimSpace(r.PostFormValue("sshPublicKey"))
	if m := store.CheckSSHPublicKey(key); m != "" {
		return false, "Fix the SSH public key first: it " + m + ".", nil
	}
	tplName := r.PostFormValue("template")
	if tplName == "" {
		return false, "Choose a template first.", nil
	}
	team, err := s.store.TeamByID(r.Context(), *u.TeamID)
	if err != nil {
		return false, "", err
	}
	// The same question as submitting asks, so the check neither lets
	// through nor tells apart anything that submitting would refuse.
	tpl, why, err := s.store.RequestableTemplate(r.Context(), tplName, team.Name)
	if err != nil {
		return false, "", err
	}
	if why != "" {
		return false, "Choose another template: this one " + why + ".", nil
	}
	size := r.PostFormValue("size")
	if _, ok := tpl.Spec.Size(size); !ok {
		return false, "Choose a size first.", nil
	}
	vm, err := provision.Render(tpl.Spec, store.Request{
		TeamName: team.Name, Namespace: team.Namespace, RequesterLogin: u.Login, TemplateName: tpl.Name,
		TemplateVersion: tpl.Version, Size: size, Name: name, SSHPublicKey: key,
	})
	if err != nil {
		return false, "The template could not be turned into a VirtualMachine; tell the platform team.", nil
	}
	if s.cluster == nil {
		return false, "No cluster is configured, so nothing can be checked.", nil
	}
	err = s.cluster.DryRunVM(r.Context(), vm)
	switch {
	case err == nil && s.cluster.Simulated:
		return true, "The VM is valid. (This portal runs a simulated cluster, which accepts every valid VM.)", nil
	case err == nil:
		return true, fmt.Sprintf("The cluster accepts this VM in namespace %s (checked by a dry run; nothing was created).", team.Namespace), nil
	case apierrors.IsNotFound(err):
		return false, fmt.Sprintf("Your team's namespace %q does not exist in the cluster yet; ask the platform team.", team.Namespace), nil
	case provision.Transient(err):
		return false, "The cluster did not answer; try again in a moment. You can still submit: Paddock retries until the cluster is back.", nil
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return false, "The cluster would refuse this VM: " + st.Status().Message, nil
	}
	return false, "", err
}
