package webui

// registerDeviceRoutes adds the members' device setup pages.
func (h *Handler) registerDeviceRoutes() {}
