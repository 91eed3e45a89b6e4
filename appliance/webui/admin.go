package webui

// registerAdminRoutes adds the owner's administration pages.
func (h *Handler) registerAdminRoutes() {}
