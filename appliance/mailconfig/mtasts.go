package mailconfig

import (
	"io"
	"net/http"
	"strconv"
)

// serveMTASTS responds to GET https://mta-sts.DOMAIN/.well-known/mta-sts.txt
// with the policy as text/plain (RFC 8461 section 3.3). Senders cache the
// policy for its max_age, so the response carries no cache headers of its
// own.
func (h *Handler) serveMTASTS(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
		return
	}

	policy, err := h.mtaSTSPolicy()
	if err != nil {
		// A sender that cannot fetch the policy keeps a cached one that
		// has not expired (RFC 8461 section 3.3).
		h.log.Error("mta-sts policy unavailable", "domain", h.domain, "err", err)
		http.Error(w, "MTA-STS policy unavailable", http.StatusServiceUnavailable)
		return
	}

	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", strconv.Itoa(len(policy)))
	io.WriteString(w, policy)
}
