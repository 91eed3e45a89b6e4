package webui

import (
	"net/http"

	"github.com/heimwolke/heimwolke/packages/control"
)

// wizardConfig holds the setup wizard's part of Options.
type wizardConfig struct {
	code  setupCode
	agent *control.Client
	// servicesReady is Options.ServicesReady, nil when heimwolke cannot
	// report its services.
	servicesReady func() bool
}

func newWizardConfig(opts Options) (wizardConfig, error) {
	code, err := readSetupCode(opts.SetupCodeFile, opts.Logger)
	if err != nil {
		return wizardConfig{}, err
	}
	socket := opts.AgentSocket
	if socket == "" {
		socket = control.AgentSocket
	}
	return wizardConfig{
		code:          code,
		agent:         control.NewClient(socket),
		servicesReady: opts.ServicesReady,
	}, nil
}

// registerWizardRoutes adds the pages of the setup wizard. Every page but
// the code step's needs the setup code first when one is required.
func (h *Handler) registerWizardRoutes() {
	h.mux.HandleFunc("GET /setup/code", h.codeStep)
	h.mux.HandleFunc("POST /setup/code", h.saveCodeStep)

	routes := []struct {
		pattern string
		handler http.HandlerFunc
	}{
		{"GET /setup", h.wizardStart},
		{"GET /setup/{$}", h.wizardStart},
		{"GET /setup/language", h.languageStep},
		{"POST /setup/language", h.saveLanguageStep},
		{"GET /setup/owner", h.ownerStep},
		{"POST /setup/owner", h.saveOwnerStep},
		{"GET /setup/members", h.membersStep},
		{"POST /setup/members", h.saveMembersStep},
		{"GET /setup/domain", h.domainStep},
		{"POST /setup/domain", h.saveDomainStep},
		{"GET /setup/router", h.routerStep},
		{"POST /setup/router", h.saveRouterStep},
		{"GET /setup/mail", h.mailStep},
		{"POST /setup/mail", h.saveMailStep},
		{"GET /setup/services", h.servicesStep},
		{"POST /setup/services", h.saveServicesStep},
		{"GET /setup/updates", h.updatesStep},
		{"POST /setup/updates", h.saveUpdatesStep},
		{"GET /setup/summary", h.summaryStep},
		{"POST /setup/apply", h.applySetup},
		{"GET /setup/progress", h.progressPage},
		{"GET /setup/progress.json", h.progressJSON},
		{"POST /setup/finish", h.finishSetup},
	}
	for _, rt := range routes {
		h.mux.HandleFunc(rt.pattern, h.needCode(rt.handler))
	}
}

// needCode sends visitors who have not entered the required setup code to
// the code step.
func (h *Handler) needCode(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if h.wizard.code.required() && !h.draftOf(r).CodeOK {
			http.Redirect(w, r, wizardSteps[stepCode].Path, http.StatusSeeOther)
			return
		}
		next(w, r)
	}
}
