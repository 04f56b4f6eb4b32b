"""The UEFI spec's vocabulary: one module per concept, each with its byte codec and validation."""
