package webui

// registerWebsiteRoutes adds the owner's page for publishing the website.
func (h *Handler) registerWebsiteRoutes() {}
