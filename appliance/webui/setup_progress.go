package webui

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heimwolke/heimwolke/packages/control"
)

const (
	// progressRefresh is how often the progress page reloads itself while
	// a step is waiting, in seconds.
	progressRefresh = 5
	// statusTimeout bounds the status request to the agent for one view
	// of the progress page.
	statusTimeout = 3 * time.Second
)

// States of a progress step.
const (
	progressDone    = "done"
	progressWaiting = "waiting"
	progressFailed  = "failed"
	progressSkipped = "skipped"
	// progressBlocked is a step that has not started because an earlier
	// one failed.
	progressBlocked = "blocked"
)

// progressStep is one row of the progress page, and of its JSON.
type progressStep struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	State string `json:"state"`
	// StateText is State in the page's language.
	StateText string `json:"state_text"`
	// Text explains the state and, for a failure, what to do.
	Text string `json:"text"`
	// Detail is a message from the agent, in English, or empty.
	Detail string `json:"detail,omitempty"`
	// FixPath and FixText link to the wizard step that corrects a failure.
	FixPath string `json:"fix_path,omitempty"`
	FixText string `json:"fix_text,omitempty"`
}

// progressReport is the content of the progress page and its JSON.
type progressReport struct {
	Steps []progressStep `json:"steps"`
	// Waiting means that a step is still under way, so that the page
	// reloads itself.
	Waiting bool `json:"waiting"`
	// CanFinish means that the accounts exist and the agent has the
	// settings, so that the setup can be finished.
	CanFinish bool `json:"can_finish"`
	// CanRetry means that apply stopped in a way that pressing it again
	// may fix.
	CanRetry bool `json:"can_retry"`
	// AllDone means that every step is done or not needed.
	AllDone bool `json:"all_done"`
}

// progressPage shows the outcome of apply and the agent's work after it. It
// reloads itself with a Refresh header while a step is waiting, because the
// pages' Content-Security-Policy allows no scripts.
func (h *Handler) progressPage(w http.ResponseWriter, r *http.Request) {
	d := h.draftOf(r)
	if d.Apply.At.IsZero() {
		http.Redirect(w, r, wizardSteps[stepSummary].Path, http.StatusSeeOther)
		return
	}
	report := h.progressOf(r.Context(), d)
	if report.Waiting {
		// Browsers follow the Refresh header as they follow <meta
		// http-equiv="refresh">, and the layout has no place for the meta.
		w.Header().Set("Refresh", strconv.Itoa(progressRefresh))
	}
	p := h.newPage(visitOf(r), "setup.progress.title")
	p.Lang = d.Lang
	p.Version = h.version
	p.Data = report
	h.render(w, http.StatusOK, "setup_progress", p)
}

// progressJSON serves the progress report as JSON, for scripts and tests.
func (h *Handler) progressJSON(w http.ResponseWriter, r *http.Request) {
	d := h.draftOf(r)
	if d.Apply.At.IsZero() {
		h.writeJSON(w, http.StatusNotFound, map[string]string{"error": "apply has not run for this browser yet"})
		return
	}
	h.writeJSON(w, http.StatusOK, h.progressOf(r.Context(), d))
}

func (h *Handler) writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		h.log.Error("encoding JSON", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(data)
}

// progressOf builds the report: the accounts and the settings from the last
// apply, then DNS, certificate and services from the agent's status.
func (h *Handler) progressOf(ctx context.Context, d draft) progressReport {
	run := d.Apply
	lang := d.Lang
	steps := []progressStep{
		h.applyStepProgress(lang, run, "accounts", run.AccountsCreated, "setup.progress.accounts.done"),
		h.applyStepProgress(lang, run, "settings", run.SettingsSent, "setup.progress.settings.done"),
	}
	if run.SettingsSent {
		status, err := h.agentStatus(ctx)
		certificate := h.certificateProgress(lang, run, status, err)
		steps = append(steps,
			h.dnsProgress(lang, run, status, err),
			certificate,
			h.servicesProgress(lang, run, certificate.State == progressDone))
	} else {
		for _, id := range []string{"dns", "certificate", "services"} {
			steps = append(steps, h.progressRow(lang, id, progressBlocked, "setup.progress.blocked"))
		}
	}

	report := progressReport{Steps: steps, CanFinish: run.AccountsCreated && run.SettingsSent, AllDone: true}
	for _, s := range steps {
		report.Waiting = report.Waiting || s.State == progressWaiting
		report.AllDone = report.AllDone && (s.State == progressDone || s.State == progressSkipped)
	}
	for _, issue := range run.Issues {
		report.CanRetry = report.CanRetry || issue.Retry
	}
	return report
}

func (h *Handler) agentStatus(ctx context.Context) (control.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	status, err := h.wizard.agent.Status(ctx)
	if err != nil {
		// Debug, because the page repeats this every few seconds.
		h.log.Debug("reading the agent's status for the setup progress failed", "err", err)
	}
	return status, err
}

// progressRow returns a row in state with the text from textKey.
func (h *Handler) progressRow(lang, id, state, textKey string, pairs ...any) progressStep {
	return progressStep{
		ID:        id,
		Title:     h.t(lang, "setup.progress."+id),
		State:     state,
		StateText: h.t(lang, "setup.progress.state."+state),
		Text:      h.t(lang, textKey, pairs...),
	}
}

// withFix links the row to the wizard step that corrects it.
func (h *Handler) withFix(lang string, s progressStep, step int) progressStep {
	if step < 0 {
		return s
	}
	s.FixPath = wizardSteps[step].Path
	s.FixText = h.t(lang, "setup.progress.fix", "step", h.t(lang, wizardSteps[step].Title))
	return s
}

// applyStepProgress returns the row of a step that apply does itself: the
// accounts or the settings.
func (h *Handler) applyStepProgress(lang string, run applyRun, id string, done bool, doneKey string) progressStep {
	if done {
		return h.progressRow(lang, id, progressDone, doneKey)
	}
	i := slices.IndexFunc(run.Issues, func(issue applyIssue) bool { return issue.Step == id })
	if i < 0 {
		return h.progressRow(lang, id, progressBlocked, "setup.progress.blocked")
	}
	s := h.progressRow(lang, id, progressFailed, "")
	var texts, details []string
	for _, issue := range run.Issues[i:] {
		if issue.Step != id {
			continue
		}
		if !slices.Contains(texts, issue.Message) {
			texts = append(texts, issue.Message)
		}
		if issue.Detail != "" {
			details = append(details, issue.Detail)
		}
		if s.FixPath == "" {
			s = h.withFix(lang, s, issue.FixStep)
		}
	}
	s.Text = strings.Join(texts, " ")
	s.Detail = strings.Join(details, "; ")
	return s
}

func (h *Handler) dnsProgress(lang string, run applyRun, status control.Status, statusErr error) progressStep {
	dns := status.DNS
	switch {
	case run.Domain == "":
		return h.progressRow(lang, "dns", progressSkipped, "setup.progress.dns.lan_only")
	case statusErr != nil:
		return h.progressRow(lang, "dns", progressWaiting, "setup.progress.agent.no_status")
	case dns == nil || (dns.Hostname != "" && !strings.EqualFold(dns.Hostname, run.Domain)):
		return h.progressRow(lang, "dns", progressWaiting, "setup.progress.dns.waiting")
	case dns.LastError != "":
		s := h.progressRow(lang, "dns", progressFailed, "setup.progress.dns.failed")
		s.Detail = dns.LastError
		return h.withFix(lang, s, stepDomain)
	case !dns.LastUpdate.IsZero():
		var addresses []string
		for _, a := range []string{dns.IPv4, dns.IPv6} {
			if a != "" {
				addresses = append(addresses, a)
			}
		}
		return h.progressRow(lang, "dns", progressDone, "setup.progress.dns.done", "name", displayDomain(run.Domain), "addresses", strings.Join(addresses, ", "))
	}
	return h.progressRow(lang, "dns", progressWaiting, "setup.progress.dns.waiting")
}

func (h *Handler) certificateProgress(lang string, run applyRun, status control.Status, statusErr error) progressStep {
	cert := status.Certificate
	switch {
	case statusErr != nil:
		return h.progressRow(lang, "certificate", progressWaiting, "setup.progress.agent.no_status")
	case cert == nil:
		return h.progressRow(lang, "certificate", progressWaiting, "setup.progress.certificate.waiting")
	case cert.LastError != "" && run.Domain == "":
		s := h.progressRow(lang, "certificate", progressFailed, "setup.progress.certificate.local_failed")
		s.Detail = cert.LastError
		return s
	case cert.LastError != "" && status.DNS != nil && dnsProviderHasAPI(status.DNS.Provider):
		// DNS-01 through the provider: the router plays no part.
		s := h.progressRow(lang, "certificate", progressFailed, "setup.progress.certificate.failed_dns")
		s.Detail = cert.LastError
		return h.withFix(lang, s, stepDomain)
	case cert.LastError != "":
		s := h.progressRow(lang, "certificate", progressFailed, "setup.progress.certificate.failed")
		s.Detail = cert.LastError
		return h.withFix(lang, s, stepRouter)
	case cert.NotAfter.IsZero():
		return h.progressRow(lang, "certificate", progressWaiting, "setup.progress.certificate.waiting")
	case run.Domain == "":
		return h.progressRow(lang, "certificate", progressDone, "setup.progress.certificate.local_done")
	case !slices.ContainsFunc(cert.Names, func(n string) bool { return strings.EqualFold(n, run.Domain) }):
		// A certificate for other names, such as the local one from
		// before the domain was set.
		return h.progressRow(lang, "certificate", progressWaiting, "setup.progress.certificate.waiting")
	}
	until := cert.NotAfter.In(time.Local).Format(h.t(lang, "format.datetime"))
	return h.progressRow(lang, "certificate", progressDone, "setup.progress.certificate.done", "until", until)
}

// dnsProviderHasAPI reports whether the agent proves the domain with
// DNS-01 through provider, as it does for every provider with an API.
func dnsProviderHasAPI(provider string) bool {
	return provider == control.DNSHetzner || provider == control.DNSRFC2136 || provider == control.DNSDeSEC
}

// servicesProgress returns the services row. The services start once the
// certificate is there.
func (h *Handler) servicesProgress(lang string, run applyRun, certificateDone bool) progressStep {
	switch {
	case run.Services == control.ServiceSettings{}:
		return h.progressRow(lang, "services", progressSkipped, "setup.progress.services.none")
	case !certificateDone:
		return h.progressRow(lang, "services", progressWaiting, "setup.progress.services.after_certificate")
	case h.wizard.servicesReady == nil:
		return h.progressRow(lang, "services", progressWaiting, "setup.progress.services.unknown")
	case h.wizard.servicesReady():
		return h.progressRow(lang, "services", progressDone, "setup.progress.services.done")
	}
	return h.progressRow(lang, "services", progressWaiting, "setup.progress.services.starting")
}
