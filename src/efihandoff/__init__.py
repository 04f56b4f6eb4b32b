"""efihandoff: follow EFI configuration tables from firmware through Xen into dom0 Linux and
fwupd."""

from __future__ import annotations

__version__ = "0.1.0"
