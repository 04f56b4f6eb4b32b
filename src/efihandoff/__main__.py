"""``python -m efihandoff``."""

from __future__ import annotations

from efihandoff.cli import main

if __name__ == "__main__":
    main()
