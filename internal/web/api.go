package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"paddock/internal/store"
)

type apiError struct {
	Error  string             `json:"error"`
	Fields []store.FieldError `json:"fields,omitempty"`
}

type apiTemplate struct {
	Name         string    `json:"name"`
	DisplayName  string    `json:"displayName"`
	Description  string    `json:"description"`
	OSFamily     string    `json:"osFamily"`
	Tags         []string  `json:"tags"`
	Version      int       `json:"version"`
	ImageSource  string    `json:"imageSource"`
	Sizes        []apiSize `json:"sizes"`
	MaxLeaseDays int       `json:"maxLeaseDays"`
	AutoApprove  bool      `json:"autoApprove"`
}

type apiSize struct {
	Name         string `json:"name"`
	CPU          int    `json:"cpu"`
	MemoryMiB    int    `json:"memoryMiB"`
	Instancetype string `json:"instancetype,omitempty"`
	Preference   string `json:"preference,omitempty"`
}

type apiRequest struct {
	ID              int64     `json:"id"`
	Name            string    `json:"name"`
	State           string    `json:"state"`
	StateReason     string    `json:"stateReason,omitempty"`
	Decision        string    `json:"decision"`
	Template        string    `json:"template"`
	TemplateVersion int       `json:"templateVersion"`
	Size            string    `json:"size"`
	Team            string    `json:"team"`
	Requester       string    `json:"requester"`
	LeaseDays       int       `json:"leaseDays"`
	Justification   string    `json:"justification"`
	CreatedAt       time.Time `json:"createdAt"`
	UpdatedAt       time.Time `json:"updatedAt"`
	ExpiresAt       time.Time `json:"expiresAt"`
	Pet             bool      `json:"pet"`
	// Pool and Replicas describe a pool of identical VMs; Members are its VMs.
	Pool     bool        `json:"pool"`
	Replicas int         `json:"replicas"`
	Members  []apiMember `json:"members,omitempty"`
	VM       *apiVM      `json:"vm"`
	Events   []apiEvent  `json:"events,omitempty"`
}

type apiVM struct {
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	Status     string `json:"status"`
	IP         string `json:"ip"`
	Message    string `json:"message,omitempty"`
	SSHCommand string `json:"sshCommand,omitempty"`
}

type apiMember struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	IP     string `json:"ip"`
	Ready  bool   `json:"ready"`
}

type apiEvent struct {
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Kind   string    `json:"kind"`
	From   string    `json:"from,omitempty"`
	To     string    `json:"to,omitempty"`
	Reason string    `json:"reason,omitempty"`
}

type apiList struct {
	Items []apiRequest `json:"items"`
	Next  string       `json:"next,omitempty"`
}

// apiNewRequest is the body of POST /api/v1/requests.
type apiNewRequest struct {
	Template      string `json:"template"`
	Size          string `json:"size"`
	Name          string `json:"name"`
	SSHPublicKey  string `json:"sshPublicKey"`
	LeaseDays     int    `json:"leaseDays"`
	Justification string `json:"justification"`
	// Replicas above 1 asks for a pool of that many VMs (default 1, one VM).
	Replicas int `json:"replicas"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func toAPIRequest(r store.Request, sshUser string) apiRequest {
	a := apiRequest{
		ID: r.ID, Name: r.Name, State: string(r.State), StateReason: r.StateReason, Decision: r.Decision,
		Template: r.TemplateName, TemplateVersion: r.TemplateVersion, Size: r.Size, Team: r.TeamName,
		Requester: r.RequesterLogin, LeaseDays: r.LeaseDays, Justification: r.Justification,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, ExpiresAt: r.ExpiresAt, Pet: r.Pet,
		Pool: r.Pool, Replicas: r.Replicas,
	}
	for _, m := range r.Members {
		a.Members = append(a.Members, apiMember{Name: m.Name, Status: m.Status, IP: m.IP, Ready: m.Ready})
	}
	if r.VM != nil {
		a.VM = &apiVM{Namespace: r.VM.Namespace, Name: r.VM.Name, Status: r.VM.Status, IP: r.VM.IP, Message: r.VM.Message}
		if r.VM.IP != "" && sshUser != "" {
			a.VM.SSHCommand = fmt.Sprintf("ssh %s@%s", sshUser, r.VM.IP)
		}
	}
	return a
}

func (s *Server) apiTemplates(w http.ResponseWriter, r *http.Request) error {
	u, _ := userFrom(r.Context())
	all, err := s.store.Templates(r.Context())
	if err != nil {
		return err
	}
	out := []apiTemplate{}
	for _, t := range offered(all, u) {
		sp := t.Spec
		at := apiTemplate{Name: sp.Name, DisplayName: sp.DisplayName, Description: sp.Description, OSFamily: sp.OSFamily,
			Tags: sp.Tags, Version: t.Version, ImageSource: sp.Image.Kind(), MaxLeaseDays: sp.MaxLeaseDays, AutoApprove: sp.AutoApprove}
		if at.Tags == nil {
			at.Tags = []string{}
		}
		for _, sz := range sp.Sizes {
			cpu, mem := sz.Resources()
			at.Sizes = append(at.Sizes, apiSize{Name: sz.Name, CPU: cpu, MemoryMiB: mem, Instancetype: sz.Instancetype, Preference: sz.Preference})
		}
		out = append(out, at)
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": out})
	return nil
}

// decodeJSON reads one JSON object into v, refusing unknown fields, wrong
// types, trailing data and bodies over MaxBodyBytes, each with a message
// that names the problem.
func decodeJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return errStatus(http.StatusUnsupportedMediaType, "send the body as application/json")
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.More() || dec.Decode(&struct{}{}) != io.EOF {
			return errStatus(http.StatusBadRequest, "the body must hold exactly one JSON object")
		}
		return nil
	}
	var maxErr *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &maxErr):
		return errStatus(http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", MaxBodyBytes))
	case errors.As(err, &typeErr):
		return &store.ValidationError{Fields: []store.FieldError{{Field: typeErr.Field, Message: "must be a " + jsonKind(typeErr.Type.Kind().String())}}}
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return errStatus(http.StatusBadRequest, "the body is not valid JSON")
	case errors.Is(err, io.EOF):
		return errStatus(http.StatusBadRequest, "the body is empty; send a JSON object")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &store.ValidationError{Fields: []store.FieldError{{Field: field, Message: "is not a known field"}}}
	}
	return errStatus(http.StatusBadRequest, "the body could not be read as JSON")
}

func jsonKind(k string) string {
	switch k {
	case "int", "int64", "int32":
		return "whole number"
	case "string":
		return "string"
	}
	return k
}

func (s *Server) apiCreateRequest(w http.ResponseWriter, r *http.Request) error {
	u, _ := userFrom(r.Context())
	if !canRequest(u) {
		return errStatus(http.StatusForbidden, "you are not in a team, so you cannot request VMs")
	}
	var in apiNewRequest
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	req, err := s.store.SubmitRequest(r.Context(), store.NewRequest{
		TeamID: *u.TeamID, Requester: u, Template: in.Template, Size: in.Size, Name: in.Name,
		SSHPublicKey: in.SSHPublicKey, LeaseDays: in.LeaseDays, Justification: in.Justification,
		IdempotencyKey: r.Header.Get("Idempotency-Key"), Replicas: in.Replicas,
		ClusterLacks: s.cfg.ClusterLacks,
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/requests/"+strconv.FormatInt(req.ID, 10))
	writeJSON(w, http.StatusCreated, toAPIRequest(req, ""))
	return nil
}

func (s *Server) apiRequest(w http.ResponseWriter, r *http.Request) error {
	req, err := s.visibleRequest(r)
	if err != nil {
		return err
	}
	tv, err := s.store.TemplateVersion(r.Context(), req.TemplateID, req.TemplateVersion)
	if err != nil {
		return err
	}
	events, err := s.store.Events(r.Context(), req.ID)
	if err != nil {
		return err
	}
	a := toAPIRequest(req, tv.Spec.SSHUser)
	for _, e := range events {
		a.Events = append(a.Events, apiEvent{At: e.At, Actor: e.Actor, Kind: e.Kind, From: string(e.FromState), To: string(e.ToState), Reason: e.Reason})
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

func (s *Server) apiRequests(w http.ResponseWriter, r *http.Request) error {
	u, _ := userFrom(r.Context())
	q := r.URL.Query()
	limit := 50
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 500 {
			return &store.ValidationError{Fields: []store.FieldError{{Field: "limit", Message: "must be a whole number from 1 to 500"}}}
		}
		limit = n
	}
	var before int64
	if b := q.Get("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 1 {
			return &store.ValidationError{Fields: []store.FieldError{{Field: "before", Message: "must be a request id"}}}
		}
		before = n
	}
	reqs, err := s.store.Requests(r.Context(), listScope(u, store.RequestFilter{Before: before, Limit: limit + 1}))
	if err != nil {
		return err
	}
	out := apiList{Items: []apiRequest{}}
	if len(reqs) > limit {
		reqs = reqs[:limit]
		out.Next = fmt.Sprintf("/api/v1/requests?before=%d&limit=%d", reqs[limit-1].ID, limit)
	}
	for _, req := range reqs {
		out.Items = append(out.Items, toAPIRequest(req, ""))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) apiManifest(w http.ResponseWriter, r *http.Request) error {
	req, err := s.visibleRequest(r)
	if err != nil {
		return err
	}
	if req.VM == nil || req.VM.Manifest == "" {
		return errStatus(http.StatusNotFound, "no VirtualMachine has been created for this request yet")
	}
	w.Header().Set("Content-Type", "application/yaml")
	_, err = w.Write([]byte(req.VM.Manifest))
	return err
}

func (s *Server) apiAction(w http.ResponseWriter, r *http.Request) error {
	req, err := s.visibleRequest(r)
	if err != nil {
		return err
	}
	if err := s.act(r, req); err != nil {
		return err
	}
	return s.writeAccepted(w, r, req.ID)
}

func (s *Server) apiDelete(w http.ResponseWriter, r *http.Request) error {
	req, err := s.visibleRequest(r)
	if err != nil {
		return err
	}
	u, _ := userFrom(r.Context())
	if !canAct(u, req) {
		return errForbidden
	}
	if err := s.store.RequestAction(r.Context(), req.ID, store.ActionDelete, store.UserActor(u)); err != nil {
		return err
	}
	return s.writeAccepted(w, r, req.ID)
}

// writeAccepted answers 202 with the request as it is now, after an action
// was recorded.
func (s *Server) writeAccepted(w http.ResponseWriter, r *http.Request, id int64) error {
	req, err := s.store.Request(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, toAPIRequest(req, ""))
	return nil
}
