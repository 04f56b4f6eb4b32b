"""Each consumer's rules, once: what Linux (by version), Xen (by version), fwupd and fwts do with
what the UEFI spec (``efihandoff.uefi``) defines.

Readers (``sources/``) and the model (``paths/``) both import these; this package imports only
``efihandoff.uefi`` (and the small value modules it shares: findings, errors, e820) and the
standard library.
"""
