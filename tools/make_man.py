#!/usr/bin/env python3
"""Write man/efihandoff.1 from the command line's own definitions (click), so the page never
drifts from ``--help``. Run after changing the CLI; ``--check`` exits 1 when the page is stale
(tests/test_cli.py runs the check).

    .venv/bin/python tools/make_man.py          # rewrite man/efihandoff.1
    .venv/bin/python tools/make_man.py --check  # is it current?

The wheel installs the page as share/man/man1/efihandoff.1 (pyproject.toml, shared-data).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "man" / "efihandoff.1"

ENVIRONMENT = [
    ("COLUMNS", "The output width; else the terminal's, else 80. Nothing is cut at any width: "
     "below what a table needs, the narrow layout prints one record per row."),
    ("NO_COLOR", "When set and not empty, no colour."),
    ("TERM", "dumb: no colour and no other terminal escapes."),
    ("EFIHANDOFF_DEBUG", "When set, an internal error shows its Python traceback."),
    ("_EFIHANDOFF_COMPLETE", "Shell completion (see SHELL COMPLETION)."),
]
EXIT_STATUS = [
    ("0", "Done. Findings do not change it unless --fail-on asks."),
    ("1", "An output could not be written, or an internal error (one line on stderr)."),
    ("2", "Bad usage."),
    ("3", "A source could not be read or is not what it claims to be (one line on stderr)."),
    ("4", "explain --fail-on: a finding at least as severe as asked."),
    ("130", "Interrupted (Ctrl-C)."),
]


def _esc(text: str) -> str:
    """roff-safe text: backslashes, and a leading dot or quote on any line."""
    out = []
    for line in text.replace("\\", "\\e").split("\n"):
        if line.startswith((".", "'")):
            line = "\\&" + line
        out.append(line)
    return "\n".join(out)


def _opt(text: str) -> str:
    return _esc(text).replace("-", "\\-")


def _paragraphs(text: str) -> list[str]:
    """click help text as paragraphs; a \\b paragraph keeps its lines."""
    paras = []
    for block in text.strip().split("\n\n"):
        lines = [ln.strip() for ln in block.strip().splitlines()]
        if lines and lines[0] == "\b":
            paras.append("\n.br\n".join(_esc(ln) for ln in lines[1:]))
        else:
            paras.append(_esc(" ".join(lines)))
    return paras


def _params(cmd: click.Command, ctx: click.Context) -> list[str]:
    out = []
    for p in cmd.get_params(ctx):
        if not isinstance(p, click.Option):
            continue
        names = ", ".join(f"\\fB{_opt(n)}\\fR" for n in [*p.opts, *p.secondary_opts])
        if not p.is_flag:
            names += f" \\fI{_esc(p.make_metavar(ctx))}\\fR"
        out += [".TP", names, _esc(" ".join((p.help or "").split()))]
        if p.show_default and p.default is not None:
            out[-1] += f" (default: {_esc(str(p.default))})"
    return out


def render(group: click.Group, version: str) -> str:
    ctx = click.Context(group, info_name="efihandoff", **group.context_settings)
    lines = [
        f'.TH EFIHANDOFF 1 "" "efihandoff {version}" "User Commands"',
        ".SH NAME",
        "efihandoff \\- follow EFI configuration tables (the ESRT above all) from firmware "
        "through Xen into dom0 Linux and fwupd",
        ".SH SYNOPSIS",
    ]
    names = list(group.list_commands(ctx))
    for name in names:
        cmd = group.get_command(ctx, name)
        assert cmd is not None
        sub = click.Context(cmd, info_name=name, parent=ctx)
        usage = " ".join(cmd.collect_usage_pieces(sub))
        lines += [".br", f"\\fBefihandoff {name}\\fR {_opt(usage)}"]
    lines.append(".SH DESCRIPTION")
    for para in _paragraphs(group.help or ""):
        lines += [".PP", para]
    lines.append(".SH COMMANDS")
    for name in names:
        cmd = group.get_command(ctx, name)
        assert cmd is not None
        sub = click.Context(cmd, info_name=name, parent=ctx)
        usage = " ".join(cmd.collect_usage_pieces(sub))
        lines += [".SS", f"\\fBefihandoff {name}\\fR {_opt(usage)}"]
        for para in _paragraphs(cmd.help or ""):
            lines += [".PP", para]
        lines += [".PP", "Options:", ".RS", *_params(cmd, sub), ".RE"]
    lines.append(".SH EXIT STATUS")
    for code, what in EXIT_STATUS:
        lines += [".TP", f"\\fB{code}\\fR", _opt(what)]
    lines.append(".SH ENVIRONMENT")
    for var, what in ENVIRONMENT:
        lines += [".TP", f"\\fB{_esc(var)}\\fR", _opt(what)]
    lines += [
        ".SH SHELL COMPLETION",
        "Completes commands, options and the --path preset ids. Add to ~/.bashrc:".replace(
            "-", "\\-"),
        ".PP",
        ".nf",
        'eval "$(_EFIHANDOFF_COMPLETE=bash_source efihandoff)"',
        ".fi",
        ".PP",
        "zsh: zsh_source in ~/.zshrc; fish: _EFIHANDOFF_COMPLETE=fish_source efihandoff > "
        "~/.config/fish/completions/efihandoff.fish.",
        ".SH SEE ALSO",
        "\\fBfwupdmgr\\fR(1), \\fBfwupdtool\\fR(1), \\fBfwts\\fR(1), \\fBxl\\fR(1), "
        "\\fBdmesg\\fR(1)",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT / "src"))
    from efihandoff import __version__
    from efihandoff.cli import main as cli

    page = render(cli, __version__)
    if "--check" in argv:
        if not PAGE.exists() or PAGE.read_text(encoding="utf-8") != page:
            print(f"{PAGE} is stale: run tools/make_man.py", file=sys.stderr)
            return 1
        return 0
    PAGE.parent.mkdir(exist_ok=True)
    PAGE.write_text(page, encoding="utf-8")
    print(f"wrote {PAGE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
