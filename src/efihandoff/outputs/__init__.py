"""Presentation: text, JSON, the sysfs tree writer."""
