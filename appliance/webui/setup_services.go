package webui

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/heimwolke/heimwolke/packages/control"
)

// serviceChoice is one checkbox of the services step.
type serviceChoice struct {
	ID      string // form field and catalog key suffix
	Checked bool
}

func serviceChoices(s control.ServiceSettings) []serviceChoice {
	return []serviceChoice{
		{"website", s.Website},
		{"mail", s.Mail},
		{"calendar_contacts", s.CalendarContacts},
		{"files", s.Files},
		{"chat", s.Chat},
	}
}

// serviceSettingsOf returns the services whose checkboxes f has ticked.
func serviceSettingsOf(f url.Values) control.ServiceSettings {
	on := func(id string) bool { return f.Get("service_"+id) == "on" }
	return control.ServiceSettings{
		Website:          on("website"),
		Mail:             on("mail"),
		CalendarContacts: on("calendar_contacts"),
		Files:            on("files"),
		Chat:             on("chat"),
	}
}

func (h *Handler) servicesStep(w http.ResponseWriter, r *http.Request) {
	d := h.draftOf(r)
	if !needSteps(w, r, d, stepServices) {
		return
	}
	p := h.wizardPage(visitOf(r), d.Lang, stepServices)
	p.Data = serviceChoices(d.Services)
	h.render(w, http.StatusOK, "setup_services", p)
}

// saveServicesStep takes the checkboxes. A household may turn every service
// off and keep only the accounts.
func (h *Handler) saveServicesStep(w http.ResponseWriter, r *http.Request) {
	v := visitOf(r)
	d := h.draftOf(r)
	if !needSteps(w, r, d, stepServices) {
		return
	}
	d.Services = serviceSettingsOf(r.PostForm)
	d.Saved[stepServices] = true
	h.drafts.put(v.visitor, d)
	nextStep(w, r, stepServices)
}

// Update channels. The wizard calls the testing channel "beta".
const (
	channelStable  = "stable"
	channelTesting = "testing"
)

// updatesDraft is the updates step's form.
type updatesDraft struct {
	Channel string
	// Hour is the local hour, 0 to 23, at which updates install.
	Hour int
}

// updatesData is the content of the updates step.
type updatesData struct {
	Updates updatesDraft
	Hours   []int
	// Now is the box's local time, so that the household can tell which
	// clock the hour follows.
	Now time.Time
}

func (h *Handler) updatesStep(w http.ResponseWriter, r *http.Request) {
	d := h.draftOf(r)
	if !needSteps(w, r, d, stepUpdates) {
		return
	}
	h.renderUpdatesStep(w, visitOf(r), d, http.StatusOK, nil)
}

func (h *Handler) renderUpdatesStep(w http.ResponseWriter, v *visit, d draft, status int, errs formErrors) {
	p := h.wizardPage(v, d.Lang, stepUpdates)
	p.Errors = errs
	hours := make([]int, 24)
	for i := range hours {
		hours[i] = i
	}
	p.Data = updatesData{Updates: d.Updates, Hours: hours, Now: h.now()}
	h.render(w, status, "setup_updates", p)
}

func (h *Handler) saveUpdatesStep(w http.ResponseWriter, r *http.Request) {
	v := visitOf(r)
	d := h.draftOf(r)
	if !needSteps(w, r, d, stepUpdates) {
		return
	}

	f := r.PostForm
	var errs formErrors
	channel := f.Get("channel")
	if channel == channelStable || channel == channelTesting {
		d.Updates.Channel = channel
	} else {
		errs.add("channel-stable", h.t(d.Lang, "validate.channel"))
	}
	hour, err := strconv.Atoi(f.Get("hour"))
	if err == nil && hour >= 0 && hour <= 23 {
		d.Updates.Hour = hour
	} else {
		errs.add("hour", h.t(d.Lang, "validate.hour"))
	}
	d.Saved[stepUpdates] = len(errs) == 0
	h.drafts.put(v.visitor, d)

	if len(errs) > 0 {
		h.renderUpdatesStep(w, v, d, http.StatusUnprocessableEntity, errs)
		return
	}
	nextStep(w, r, stepUpdates)
}
