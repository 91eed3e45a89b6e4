package webui

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/heimwolke/heimwolke/packages/accounts"
)

// defaultHostname is the box's mDNS name on the LAN, which the device pages
// use while the household has no domain.
const defaultHostname = "heimwolke.local"

const (
	// totpSetupLifetime is how long a TOTP secret from the setup page
	// waits for the code that confirms it.
	totpSetupLifetime = 15 * time.Minute

	// profileLifetime is how long a configuration profile waits for its
	// download after the app password in it was created.
	profileLifetime = 10 * time.Minute

	// maxPendingDeviceItems caps the pending TOTP setups and the pending
	// profiles, each.
	maxPendingDeviceItems = 1000
)

// deviceKind is a kind of client that a device page sets up.
type deviceKind struct {
	// Slug names the kind in the URL and in the catalog keys
	// devices.<slug>.*.
	Slug string

	// Scope is the set of services that the page's app password opens.
	Scope accounts.Scope
}

// NOTE: The menu and button names in the guides (the devices.*.step*
// catalog keys) follow Thunderbird 115, iOS 17, macOS 14, Windows 10 and 11
// and DAVx⁵ 4 as remembered, not as checked against the programs.
var deviceKinds = []deviceKind{
	{"thunderbird", accounts.ScopeMail | accounts.ScopeDAV},
	{"apple", accounts.ScopeMail | accounts.ScopeDAV},
	{"android", accounts.ScopeAll},
	{"files", accounts.ScopeDAV},
}

func findDeviceKind(slug string) (deviceKind, bool) {
	for _, k := range deviceKinds {
		if k.Slug == slug {
			return k, true
		}
	}
	return deviceKind{}, false
}

// devicePages serves the members' TOTP setup and the pages that set up
// their devices.
type devicePages struct {
	*Handler

	// totpSetups holds each user's pending TOTP secret, keyed by the user
	// ID, until a code confirms it. The accounts store keeps the secret
	// too, but cannot return it, and the page shows it again after a
	// wrong code.
	totpSetups *expiringMap[accounts.TOTPSetup]

	// profiles holds the app password of a configuration profile, keyed
	// by a random id, between the POST that creates it and the download.
	// profileMu makes each download take its profile once.
	profiles  *expiringMap[secretFlash]
	profileMu sync.Mutex
}

// registerDeviceRoutes adds the members' TOTP setup page and the device
// setup pages.
func (h *Handler) registerDeviceRoutes() {
	d := &devicePages{
		Handler:    h,
		totpSetups: newExpiringMap[accounts.TOTPSetup](h.now, totpSetupLifetime, maxPendingDeviceItems),
		profiles:   newExpiringMap[secretFlash](h.now, profileLifetime, maxPendingDeviceItems),
	}

	h.mux.HandleFunc("GET /account/totp", d.totpPage)
	h.mux.HandleFunc("POST /account/totp/start", d.startTOTP)
	h.mux.HandleFunc("POST /account/totp/enable", d.enableTOTP)
	h.mux.HandleFunc("POST /account/totp/disable", d.disableTOTP)

	h.mux.HandleFunc("GET /account/devices", d.devicesIndex)
	h.mux.HandleFunc("GET /account/devices/{kind}", d.devicePage)
	h.mux.HandleFunc("POST /account/devices/{kind}", d.createDevicePassword)
	h.mux.HandleFunc("GET /account/devices/apple/profile", d.downloadProfile)
}

// devicesIndexData is the content of the page that lists the device kinds.
type devicesIndexData struct {
	Kinds []deviceKind

	// LANName is set while the host is defaultHostname, which only
	// devices on the LAN resolve.
	LANName bool
	Host    string
}

// newDevicesIndexData returns the content of the index for names.
func newDevicesIndexData(names serviceNames) devicesIndexData {
	return devicesIndexData{Kinds: deviceKinds, LANName: names.LANOnly(), Host: names.DAVHost}
}

func (d *devicePages) devicesIndex(w http.ResponseWriter, r *http.Request) {
	v := requireSession(w, r)
	if v == nil {
		return
	}
	p := d.newPage(v, "devices.title")
	p.Data = newDevicesIndexData(d.serviceNames(r.Context()))
	d.render(w, http.StatusOK, "devices_index", p)
}

// deviceData is the content of a device page.
type deviceData struct {
	Kind    string
	LANName bool
	Host    string

	// names are the server names that the settings give clients.
	names serviceNames

	// AppName fills the name field of the form that creates the app
	// password.
	AppName string

	// NewSecret and Settings are set on the page that follows the
	// creation of an app password, once.
	NewSecret *newSecret
	Settings  *deviceSettings

	// ProfileID is the id of a configuration profile that waits for its
	// download, on the page for Apple devices, and ProfileMinutes the
	// time that the download link lasts.
	ProfileID      string
	ProfileMinutes int
}

func (d *devicePages) newDeviceData(ctx context.Context, lang string, kind deviceKind) deviceData {
	names := d.serviceNames(ctx)
	return deviceData{
		Kind:    kind.Slug,
		LANName: names.LANOnly(),
		Host:    names.DAVHost,
		names:   names,
		AppName: d.t(lang, "devices."+kind.Slug+".app_name"),

		ProfileMinutes: int(profileLifetime / time.Minute),
	}
}

func (d *devicePages) devicePage(w http.ResponseWriter, r *http.Request) {
	kind, ok := findDeviceKind(r.PathValue("kind"))
	if !ok {
		d.notFound(w, r)
		return
	}
	v := requireSession(w, r)
	if v == nil {
		return
	}
	p := d.newPage(v, "devices."+kind.Slug+".title")
	data := d.newDeviceData(r.Context(), v.lang, kind)
	user := &v.session.User

	id := r.URL.Query().Get("created")
	switch {
	case id == "":
	case kind.Slug == "apple":
		// Showing the page leaves the profile in place, because the
		// download takes it.
		if f, ok := d.profiles.get(id); ok && f.userID == user.ID {
			data.ProfileID = id
		}
	default:
		data.NewSecret = d.secrets.take(id, user.ID)
	}

	if data.NewSecret != nil {
		settings, err := newDeviceSettings(data.names, user, data.NewSecret.Secret, kind.Slug == "android")
		if err != nil {
			d.internalError(w, v, "making device settings", err)
			return
		}
		data.Settings = settings
		allowDataImages(w)
	}
	p.Data = data
	d.render(w, http.StatusOK, "devices_setup", p)
}

// createDevicePassword creates the app password of a device page. It sends
// the browser to the page again, which then shows the settings with the
// password, or for Apple devices the link to the profile.
func (d *devicePages) createDevicePassword(w http.ResponseWriter, r *http.Request) {
	kind, ok := findDeviceKind(r.PathValue("kind"))
	if !ok {
		d.notFound(w, r)
		return
	}
	v := requireSession(w, r)
	if v == nil {
		return
	}
	user := v.session.User
	p := d.newPage(v, "devices."+kind.Slug+".title")
	data := d.newDeviceData(r.Context(), v.lang, kind)
	data.AppName = normalizeDisplayName(r.PostForm.Get("app_name"))

	if key := appPasswordNameProblem(data.AppName); key != "" {
		p.Errors.add("app_name", d.t(v.lang, key, "n", len([]rune(data.AppName))))
		p.Data = data
		d.render(w, http.StatusUnprocessableEntity, "devices_setup", p)
		return
	}

	secret, ap, err := d.accounts.CreateAppPassword(r.Context(), user.ID, data.AppName, kind.Scope)
	if errors.Is(err, accounts.ErrInvalid) {
		// The name passed the check above, so only the limit of app
		// passwords per user is left to break.
		p.Errors.add("app_name", p.T("validate.app_password.limit"))
		p.Data = data
		d.render(w, http.StatusUnprocessableEntity, "devices_setup", p)
		return
	}
	if err != nil {
		d.internalError(w, v, "creating app password", err)
		return
	}
	d.log.Info("app password created", "user", user.Name, "app_password_id", ap.ID, "scope", ap.Scope.String(), "device", kind.Slug)

	var id string
	if kind.Slug == "apple" {
		id = newFlashID()
		d.profiles.put(id, secretFlash{userID: user.ID, name: ap.Name, secret: secret})
	} else {
		id = d.secrets.put(user.ID, ap.Name, secret)
	}
	http.Redirect(w, r, "/account/devices/"+kind.Slug+"?created="+id+"#settings", http.StatusSeeOther)
}

// downloadProfile sends the configuration profile that the Apple page
// created, once.
func (d *devicePages) downloadProfile(w http.ResponseWriter, r *http.Request) {
	v := requireSession(w, r)
	if v == nil {
		return
	}
	user := &v.session.User
	f, ok := d.takeProfile(r.URL.Query().Get("id"), user.ID)
	if !ok {
		d.log.Info("configuration profile download rejected: taken, expired or another user's", "user", user.Name, "source", v.source)
		d.renderMessage(w, v, http.StatusGone, "devices.apple.expired.title", "devices.apple.expired", "/account/devices/apple")
		return
	}

	settings, err := newDeviceSettings(d.serviceNames(r.Context()), user, f.secret, false)
	if err != nil {
		d.internalError(w, v, "making device settings", err)
		return
	}
	profile, err := d.appleProfile(v.lang, settings, user)
	if err != nil {
		d.internalError(w, v, "making configuration profile", err)
		return
	}
	d.log.Info("configuration profile downloaded", "user", user.Name, "source", v.source)
	w.Header().Set("Content-Type", "application/x-apple-aspen-config")
	w.Header().Set("Content-Disposition", `attachment; filename="heimwolke.mobileconfig"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(profile)))
	w.Write(profile)
}

// takeProfile returns and deletes the pending profile with id if it
// belongs to userID.
func (d *devicePages) takeProfile(id string, userID int64) (secretFlash, bool) {
	d.profileMu.Lock()
	defer d.profileMu.Unlock()

	f, ok := d.profiles.get(id)
	if !ok || f.userID != userID {
		return secretFlash{}, false
	}
	d.profiles.delete(id)
	return f, true
}

// newFlashID returns a random id for a value that waits in memory for the
// next request.
func newFlashID() string {
	raw := make([]byte, 16)
	rand.Read(raw)
	return base64.RawURLEncoding.EncodeToString(raw)
}
