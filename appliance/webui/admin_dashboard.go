package webui

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heimwolke/heimwolke/packages/control"
)

// agentTimeout bounds the dashboard's status request to the agent, so that
// a stuck agent delays the page by at most this long.
const agentTimeout = 2 * time.Second

// dashboardData is the content of the dashboard.
type dashboardData struct {
	Version string
	Started time.Time

	Agent agentInfo
	Mail  mailView

	// MailPorts and ChatPorts are set while the settings have mail or
	// chat on, so that the manual port forwarding lists their ports too.
	MailPorts, ChatPorts bool

	// Storage is nil when the data folder could not be measured.
	Storage *storageInfo

	// Logs are heimwolke's recent log lines, newest first. LogsKept is
	// false when the program keeps none.
	Logs     []string
	LogsKept bool

	RebootAvailable bool
}

// agentInfo is the dashboard's view of heimwolke-agent.
type agentInfo struct {
	Reachable bool

	// Problem is the catalog key that explains why the agent is not
	// reachable.
	Problem string

	Status control.Status

	// DNSProvider is the display name of the status's DNS provider, as
	// the wizard names it, or its id for a provider that this version
	// does not know.
	DNSProvider string

	// Certificate, Network and Ports are the views of the status's fields
	// of the same names, nil where the status has none. Records are the
	// DNS records.
	Certificate *certificateView
	Network     *networkView
	Ports       *portsView
	Records     []recordView

	// Rebind is the check of the router's DNS rebind protection, nil
	// until the agent has checked.
	Rebind *rebindView

	// LocalRoot is the box's own root certificate, nil unless the agent
	// reports a certificate from the box's own CA and the root can be
	// read.
	LocalRoot *localRootView
}

// storageInfo is the size of the data folder's file system.
type storageInfo struct {
	Path                   string
	Total, Used, Available string
}

func (a *adminPages) dashboard(w http.ResponseWriter, r *http.Request) {
	v := a.requireOwner(w, r)
	if v == nil {
		return
	}
	p := a.newPage(v, "admin.dashboard.title")
	services := a.servicesOn(r.Context())
	data := dashboardData{
		Version:         a.version,
		Started:         a.started,
		Agent:           a.agentInfo(r.Context(), v.lang),
		Mail:            a.mailView(r.Context()),
		MailPorts:       services.Mail,
		ChatPorts:       services.Chat,
		Storage:         a.storageInfo(v.lang),
		RebootAvailable: a.rebooter.Available(),
	}
	if a.logs != nil {
		data.LogsKept = true
		data.Logs = a.logs.Lines()
		slices.Reverse(data.Logs)
	}
	p.Data = data
	a.render(w, http.StatusOK, "admin_dashboard", p)
}

// agentInfo requests the agent's status over the control socket and
// prepares it for a page in lang.
func (a *adminPages) agentInfo(ctx context.Context, lang string) agentInfo {
	ctx, cancel := context.WithTimeout(ctx, agentTimeout)
	defer cancel()
	status, err := a.agent.Status(ctx)
	if err != nil {
		a.log.Warn("agent status request failed", "socket", a.agentSocket, "err", err)
		return agentInfo{Problem: agentProblem(a.agentSocket, err)}
	}
	info := agentInfo{
		Reachable:   true,
		Status:      status,
		Certificate: newCertificateView(status.Certificate, a.now()),
		Network:     a.newNetworkView(status.Network),
		Ports:       a.newPortsView(status.Ports),
	}
	hostname := ""
	if status.DNS != nil {
		info.Records = newRecordViews(status.DNS.Records)
		info.DNSProvider = a.dnsProviderName(lang, status.DNS.Provider)
		hostname = status.DNS.Hostname
	}
	info.Rebind = a.newRebindView(status.Network, hostname)
	if status.Certificate != nil && status.Certificate.Local {
		info.LocalRoot = a.localRootView(lang)
	}
	return info
}

// servicesOn returns the services that the agent's settings have on, or
// none when the settings cannot be read, which mailView logs.
func (a *adminPages) servicesOn(ctx context.Context) control.ServiceSettings {
	settings, err := a.settings.get(ctx)
	if err != nil {
		return control.ServiceSettings{}
	}
	return settings.Services
}

// dnsProviderName returns the wizard's name for the DNS provider id in
// lang, or id itself if it is not one of control's DNS constants.
func (a *adminPages) dnsProviderName(lang, id string) string {
	switch id {
	case control.DNSHetzner, control.DNSRFC2136, control.DNSDeSEC, control.DNSDynDNS2:
		return a.t(lang, "setup.domain.mode."+id)
	}
	return id
}

// agentProblem returns the catalog key that explains err from the agent's
// socket at path.
func agentProblem(path string, err error) string {
	var apiErr *control.Error
	switch {
	case errors.As(err, &apiErr):
		return "admin.agent.error"
	case errors.Is(err, context.DeadlineExceeded):
		return "admin.agent.timeout"
	}
	if _, statErr := os.Stat(path); errors.Is(statErr, fs.ErrNotExist) {
		return "admin.agent.no_socket"
	}
	return "admin.agent.refused"
}

// storageInfo measures the file system of the data folder, or returns nil
// without a data folder or when that fails.
func (a *adminPages) storageInfo(lang string) *storageInfo {
	if a.dataDir == "" {
		return nil
	}
	usage, err := measureStorage(a.dataDir)
	if err != nil {
		a.log.Warn("measuring data folder failed", "path", a.dataDir, "err", err)
		return nil
	}
	return &storageInfo{
		Path:      a.dataDir,
		Total:     formatBytes(lang, usage.total),
		Used:      formatBytes(lang, usage.used),
		Available: formatBytes(lang, usage.available),
	}
}

// storageUsage is the size of a file system in bytes. Used and available
// need not add up to total: ext4 reserves blocks for root, which count
// neither as used nor as available.
type storageUsage struct {
	total, used, available uint64
}

// formatBytes formats n in decimal units (1 GB = 10⁹ bytes), as phones and
// file managers show storage, with a decimal comma in German.
func formatBytes(lang string, n uint64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	value := float64(n)
	unit := 0
	for value >= 1000 && unit < len(units)-1 {
		value /= 1000
		unit++
	}
	precision := 0
	if unit > 0 && value < 10 {
		precision = 1
	}
	text := strconv.FormatFloat(value, 'f', precision, 64)
	if lang == "de" {
		text = strings.Replace(text, ".", ",", 1)
	}
	return text + "\u00a0" + units[unit]
}
