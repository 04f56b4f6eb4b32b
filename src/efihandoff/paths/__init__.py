"""The handoff: firmware boot services, Xen, Linux; presets and proposals."""
