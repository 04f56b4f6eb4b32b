"""Command line: parse arguments, call the library, print. Nothing else lives here."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any, TypeVar

import click
from rich.console import Console

from efihandoff import __version__
from efihandoff.errors import EfiHandoffError, OutputError, ParseError, SourceError, UsageError
from efihandoff.explain import explain as explain_views
from efihandoff.outputs import text
from efihandoff.outputs.files import write_text
from efihandoff.outputs.json import esrt_json, explain_document, memory_map_json, path_json
from efihandoff.outputs.sysfs import write_tree
from efihandoff.paths.presets import PRESETS, PathSpec, parse_path
from efihandoff.paths.simulate import simulate
from efihandoff.sources import (
    Source,
    SourceKind,
    View,
    example_path,
    live_views,
    read_machine,
    read_source,
    read_sources,
)

F = TypeVar("F", bound=Callable[..., Any])


def _errors(fn: F) -> F:
    """One clear line on stderr and the exit codes of DESIGN.md, never a traceback."""

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UsageError as exc:
            click.echo(f"efihandoff: {exc}", err=True)
            sys.exit(2)
        except (SourceError, ParseError) as exc:
            click.echo(f"efihandoff: {exc}", err=True)
            sys.exit(3)
        except OutputError as exc:
            click.echo(f"efihandoff: {exc}", err=True)
            sys.exit(1)
        except EfiHandoffError as exc:
            click.echo(f"efihandoff: {exc}", err=True)
            sys.exit(3)
        except Exception as exc:  # a bug: still one line, no traceback unless asked for
            if os.environ.get("EFIHANDOFF_DEBUG"):
                raise
            click.echo(f"efihandoff: internal error: {type(exc).__name__}: {exc}", err=True)
            sys.exit(1)

    return run  # type: ignore[return-value]


def _console() -> Console:
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _views(sources: Sequence[str]) -> list[View]:
    if sources:
        return read_sources(sources)
    live = live_views()
    if live is not None:
        return live
    path = example_path()
    view = read_source(path)[0]
    return [View(Source(str(path), SourceKind.EXAMPLE), view.machine, view.log)]


def _specs(path_ids: Sequence[str]) -> list[PathSpec]:
    return [parse_path(p) for p in path_ids] if path_ids else list(PRESETS.values())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="efihandoff")
def main() -> None:
    """Follow EFI configuration tables (the ESRT above all) from firmware through Xen into
    dom0 Linux and fwupd, and say what survives on each path."""


@main.command()
@click.argument("sources", nargs=-1)
@click.option(
    "--path",
    "paths",
    multiple=True,
    metavar="ID",
    help="A preset id or key=value path; repeatable. Default: every preset.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the explain/1 JSON document.")
@click.option("--full-map", is_flag=True, help="Show every memory-map descriptor.")
@click.option(
    "--html",
    "html_out",
    type=click.Path(),  # a wrong kind of target is the writer's one-line OutputError (exit 1)
    help="Also write a self-contained report page (picture, tables, verdicts) to this file.",
)
@_errors
def explain(
    sources: tuple[str, ...],
    paths: tuple[str, ...],
    as_json: bool,
    full_map: bool,
    html_out: str | None,
) -> None:
    """Where firmware puts each table, and what each path shows fwupd.

    SOURCE: kernel logs, /sys/firmware copies (directory or .tar[.gz]), memory dumps (raw or
    ELF), scenarios (.toml); several sources of one machine are merged. With no SOURCE: the
    live machine if it booted through EFI, else the bundled example (the output says which)."""
    ex = explain_views(_views(sources), _specs(paths))
    doc = explain_document(ex)
    if html_out:
        from efihandoff.outputs.html import explain_html

        write_text(html_out, explain_html(doc, path_id=paths[0] if paths else None))
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        text.render_explain(doc, _console(), full_map=full_map)


@main.command()
@click.argument("scenario")
@click.option(
    "--path",
    "path_id",
    default="native",
    show_default=True,
    metavar="ID",
    help="A preset id or key=value path.",
)
@click.option(
    "--sysfs-out",
    type=click.Path(),  # a wrong kind of target is the writer's one-line OutputError (exit 1)
    help="Write the /sys/firmware tree the kernel would expose here.",
)
@click.option("--force", is_flag=True, help="Replace a non-empty --sysfs-out directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the path result as JSON.")
@_errors
def boot(scenario: str, path_id: str, sysfs_out: str | None, force: bool, as_json: bool) -> None:
    """Simulate one path: print the log lines firmware, Xen and Linux print, and optionally
    write the sysfs tree (DIR stands for /sys/firmware)."""
    machine, _ = read_machine(scenario)
    spec = parse_path(path_id)
    result = simulate(machine, spec)
    if sysfs_out:
        # efi/ and the efivarfs mount point exist whenever the kernel booted through EFI;
        # fwupd 2.0 lists nothing without efi/efivars ("kernel efivars support missing").
        tree = {"efi": None, "efi/efivars": None, **(result.sysfs or {})}
        write_tree(tree, sysfs_out, force=force)
    data = path_json(result)
    if as_json:
        click.echo(json.dumps({"path": spec.id, **data}, indent=2))
    else:
        text.render_boot(data, spec.id, _console())


@main.command()
@click.argument("source")
@click.option("--json", "as_json", is_flag=True)
@_errors
def esrt(source: str, as_json: bool) -> None:
    """The ESRT a source holds, entry by entry."""
    machine, _ = read_machine(source)
    data = esrt_json(machine)
    if as_json:
        click.echo(json.dumps({"schema": "efihandoff/esrt/1", "esrt": data}, indent=2))
    elif data is None:
        click.echo("no ESRT")
    else:
        text.render_esrt(data, _console())


@main.command()
@click.argument("source")
@click.option("--svg", "svg_out", type=click.Path(), help="Write the picture here.")
@click.option("--path", "path_id", metavar="ID", help="Hatch what this path reclaims.")
@click.option("--json", "as_json", is_flag=True)
@_errors
def memmap(source: str, svg_out: str | None, path_id: str | None, as_json: bool) -> None:
    """The memory map a source holds; --svg draws it, one band per descriptor, with the
    tables marked (and, with --path, the memory that path reclaims hatched)."""
    views = read_source(source)
    if svg_out:
        from efihandoff.outputs.svg import memmap_svg

        specs = [parse_path(path_id)] if path_id else None
        doc = explain_document(explain_views(views, specs))
        write_text(svg_out, memmap_svg(doc, path_id=specs[0].id if specs else None))
    machine, src = views[0].machine, views[0].source
    rows = memory_map_json(machine, str(src.kind))
    if as_json:
        click.echo(json.dumps({"schema": "efihandoff/memmap/1", "memory_map": rows}, indent=2))
    elif svg_out:
        click.echo(f"wrote {svg_out}")
    elif rows is None:
        click.echo("no memory map in this source")
    else:
        text.render_memory_map(rows, _console(), limit=None)


@main.command()
@click.argument("out", type=click.Path(dir_okay=False), required=False)
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--print-script",
    is_flag=True,
    help="Print the POSIX sh collector (same archive, no Python needed) and exit.",
)
@_errors
def collect(out: str | None, as_json: bool, print_script: bool) -> None:
    """Copy this machine's /sys/firmware (ESRT, systab, runtime map, memmap; no efivars),
    /sys/hypervisor, kernel log and, in a Xen dom0, xl dmesg into OUT (.tar.gz), read-only, for
    a bug report."""
    from efihandoff.sources.collect import collect as do_collect
    from efihandoff.sources.collect import collector_script

    if print_script:
        click.echo(collector_script(), nl=False)
        return
    if out is None:
        raise UsageError("collect: give OUT (.tar.gz), or --print-script")
    report = do_collect(out)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "schema": "efihandoff/collect/1",
                    "path": report.path,
                    "files": list(report.files),
                    "skipped": [{"path": p, "reason": r} for p, r in report.skipped],
                    "kernel_log": report.kernel_log_source,
                    "size": report.size,
                },
                indent=2,
            )
        )
        return
    click.echo(f"wrote {report.path}: {len(report.files)} files, {report.size} bytes")
    click.echo(f"kernel log: {report.kernel_log_source or 'not readable (run as root?)'}")
    for path, why in report.skipped:
        click.echo(f"  skipped {path}: {why}")


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--path",
    "path_ids",
    multiple=True,
    metavar="ID",
    help="Paths to judge (default: every preset).",
)
@click.option("--jobs", type=click.IntRange(min=1), help="Worker processes (default: every core).")
@click.option("--json", "as_json", is_flag=True, help="Print the survey/1 JSON document.")
@click.option("--csv", "as_csv", is_flag=True, help="Print one CSV row per machine.")
@_errors
def survey(
    paths: tuple[str, ...], path_ids: tuple[str, ...], jobs: int | None, as_json: bool, as_csv: bool
) -> None:
    """Many machines at once: directories (recursive), files and .tar/.tar.gz archives of kernel
    logs and /sys/firmware copies; per path, how many keep, lose or refuse each table, the ESRT
    memory types, the proposals' memory cost and the findings. A bad file is counted, never
    fatal."""
    from efihandoff import survey as survey_mod
    from efihandoff.outputs.survey import render_survey

    if as_json and as_csv:
        raise UsageError("--json and --csv exclude each other")
    specs = _specs(path_ids)
    if sys.stderr.isatty() and not (as_json or as_csv):
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task("reading", total=None)
            result = survey_mod.run(
                paths,
                jobs=jobs,
                specs=specs,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    else:
        result = survey_mod.run(paths, jobs=jobs, specs=specs)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    elif as_csv:
        click.echo(result.to_csv(), nl=False)
    else:
        render_survey(result, _console())
