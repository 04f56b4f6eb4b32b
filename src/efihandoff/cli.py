"""Command line: parse arguments, call the library, print. Nothing else lives here."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any, TypeVar, cast

import click
from click.shell_completion import CompletionItem

from efihandoff import __version__
from efihandoff.descriptions import entry_names
from efihandoff.errors import EfiHandoffError, OutputError, ParseError, SourceError, UsageError
from efihandoff.explain import explain as explain_views
from efihandoff.outputs import text
from efihandoff.outputs.files import write_text
from efihandoff.outputs.json import esrt_json, explain_document, memory_map_json, path_json
from efihandoff.outputs.sysfs import write_tree
from efihandoff.paths.presets import PATH_KEYS, PRESETS, PathSpec, parse_path
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

EXIT_FINDINGS = 4  # --fail-on: a finding at or above the asked severity
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
_PRESET_LIST = ", ".join(PRESETS)
_PATH_HELP = (
    f"A preset id ({_PRESET_LIST}) or key=value pairs "
    "(base=PRESET, xen=, linux=, boot=efi|multiboot2, mapbs, policy=, prerelease, scrub=, "
    "dom0_kernel=START-END)"
)
_SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}


def _interrupted() -> None:
    """Ctrl-C: no traceback, no "Aborted!", exit 130 (a newline keeps the prompt tidy)."""
    with contextlib.suppress(OSError, ValueError):  # a closed stderr: still exit 130
        sys.stderr.write("\n")
        sys.stderr.flush()
    sys.exit(EXIT_INTERRUPTED)


def _broken_pipe() -> None:
    """The reader went away (``| head``): stop quietly, like other tools do."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    sys.exit(1)  # what rich does on a broken pipe too


def _errors(fn: F) -> F:
    """One clear line on stderr and the exit codes of docs/design.md, never a traceback."""

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            _interrupted()
        except BrokenPipeError:
            _broken_pipe()
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

    return cast(F, run)  # functools.wraps keeps the command's signature


def _level() -> int:
    """-1 quiet, 0 normal, 1 verbose (the last of -q/-v given wins)."""
    ctx = click.get_current_context(silent=True)
    return int(ctx.meta.get("efihandoff.level", 0)) if ctx is not None else 0


def _note(message: str) -> None:
    """Progress and "wrote FILE": stderr, silenced by -q."""
    if _level() >= 0:
        click.echo(message, err=True)


def _set_level(value: int) -> Callable[[click.Context, click.Parameter, bool], None]:
    def callback(ctx: click.Context, _param: click.Parameter, flag: bool) -> None:
        if flag:
            ctx.meta["efihandoff.level"] = value

    return callback


def _verbosity(fn: F) -> F:
    """-v/--verbose and -q/--quiet, on every command."""
    fn = click.option(
        "-q", "--quiet", is_flag=True, expose_value=False, callback=_set_level(-1),
        help="Results only: no notes, progress or \"wrote FILE\" on stderr.",
    )(fn)
    return cast(F, click.option(
        "-v", "--verbose", is_flag=True, expose_value=False, callback=_set_level(1),
        help="Say more (explain: the whole memory map and every table's reason).",
    )(fn))


def _complete_path(
    _ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Shell completion of --path: the preset ids, then the key= words."""
    out = [CompletionItem(pid, help=spec.label()) for pid, spec in PRESETS.items()]
    out += [CompletionItem(k) for k in PATH_KEYS]
    return [c for c in out if c.value.startswith(incomplete)]


def _console() -> Any:
    return text.make_console()


def _fail_on(level: str | None, findings: Sequence[dict[str, Any]]) -> None:
    if level is None:
        return
    worst = [f for f in findings if _SEVERITY_RANK.get(f["severity"], 0) >= _SEVERITY_RANK[level]]
    if worst:
        _note(f"efihandoff: {len(worst)} finding(s) at {level} or above (--fail-on {level})")
        sys.exit(EXIT_FINDINGS)


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


class _Group(click.Group):
    """The command group; Ctrl-C while a command parses or runs exits 130 with no traceback
    (click's own handler would print "Aborted!" and exit 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            _interrupted()


_MAIN_HELP = f"""Follow EFI configuration tables (the ESRT above all) from firmware through Xen into
dom0 Linux and fwupd, and say what survives on each path.

\b
Paths (--path): {_PRESET_LIST}
Results go to stdout; notes, progress and "wrote FILE" to stderr.
Exit codes: 0 done, 2 bad usage, 3 a source could not be read,
1 an output could not be written, 4 findings (--fail-on), 130 interrupted.
Shell completion (bash; zsh_source, fish_source for those shells):
  eval "$(_EFIHANDOFF_COMPLETE=bash_source efihandoff)"
"""


@click.group(
    cls=_Group, help=_MAIN_HELP, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, prog_name="efihandoff")
def main() -> None:
    pass


@main.command()
@click.argument("sources", nargs=-1)
@click.option(
    "--path",
    "paths",
    multiple=True,
    metavar="ID",
    shell_complete=_complete_path,
    help=f"{_PATH_HELP}; repeatable. Default: every preset.",
)
@click.option(
    "--json", "as_json", is_flag=True,
    help="Print the JSON document (schema efihandoff/explain/1) instead of text.",
)
@click.option("--full-map", is_flag=True, help="Show every memory-map descriptor.")
@click.option(
    "--fail-on",
    type=click.Choice(["warning", "error"]),
    help="Exit 4 when a finding is at least this severe (default: findings never change it).",
)
@click.option(
    "--html",
    "html_out",
    type=click.Path(),  # a wrong kind of target is the writer's one-line OutputError (exit 1)
    help="Also write a self-contained report page (picture, tables, verdicts) to this file.",
)
@_verbosity
@_errors
def explain(
    sources: tuple[str, ...],
    paths: tuple[str, ...],
    as_json: bool,
    full_map: bool,
    fail_on: str | None,
    html_out: str | None,
) -> None:
    """Where firmware puts each table, and what each path shows fwupd.

    Prints who printed the evidence (role, Xen and Linux versions), the memory map, the
    configuration tables, the ESRT entry by entry (with fwupd's and fwts' names), each path's
    verdicts (with "observed": the stack that printed a dom0 log), findings and advice.

    SOURCE: kernel logs, /sys/firmware copies (directory or .tar[.gz]), memory dumps (raw or
    ELF), scenarios (.toml); several sources of one machine are merged. With no SOURCE: the
    live machine if it booted through EFI, else the bundled example (the output says which)."""
    ex = explain_views(_views(sources), _specs(paths))
    doc = explain_document(ex)
    if html_out:
        from efihandoff.outputs.html import explain_html

        written = write_text(html_out, explain_html(doc, path_id=paths[0] if paths else None))
        _note(f"wrote {written}")
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        text.render_explain(doc, _console(), full_map=full_map, verbose=_level() > 0)
    _fail_on(fail_on, doc["findings"])


@main.command()
@click.argument("scenario")
@click.option(
    "--path",
    "path_id",
    default="native",
    show_default=True,
    metavar="ID",
    shell_complete=_complete_path,
    help=f"{_PATH_HELP}.",
)
@click.option(
    "--sysfs-out",
    type=click.Path(),  # a wrong kind of target is the writer's one-line OutputError (exit 1)
    help="Write the /sys/firmware tree the kernel would expose here.",
)
@click.option("--force", is_flag=True, help="Replace a non-empty --sysfs-out directory.")
@click.option(
    "--log", "log_only", is_flag=True,
    help="Print only the log lines on stdout (the default when stdout is not a terminal); "
    "the verdicts go to stderr.",
)
@click.option(
    "--json", "as_json", is_flag=True,
    help="Print the path result (schema efihandoff/boot/1) instead of text.",
)
@_verbosity
@_errors
def boot(
    scenario: str,
    path_id: str,
    sysfs_out: str | None,
    force: bool,
    log_only: bool,
    as_json: bool,
) -> None:
    """Simulate one path: print the log lines firmware, Xen and Linux would print, and
    optionally write the sysfs tree (DIR stands for /sys/firmware).

    On a terminal: the path, its log, each table's verdict and fwupd's devices. Piped (or with
    --log): stdout is exactly the log lines, which `explain` reads back as the same machine;
    the verdicts go to stderr (not with -q)."""
    machine, _ = read_machine(scenario)
    spec = parse_path(path_id)
    result = simulate(machine, spec)
    if sysfs_out:
        # efi/ and the efivarfs mount point exist whenever the kernel booted through EFI;
        # fwupd 2.0 lists nothing without efi/efivars ("kernel efivars support missing").
        tree = {"efi": None, "efi/efivars": None, **(result.sysfs or {})}
        write_tree(tree, sysfs_out, force=force)
        _note(f"wrote {sysfs_out}")
    data = path_json(result)
    if as_json:
        click.echo(json.dumps({"schema": "efihandoff/boot/1", "path": spec.id, **data}, indent=2))
    elif log_only or not sys.stdout.isatty():
        text.write_log(data["log"], sys.stdout)
        if _level() >= 0:
            text.render_boot(data, spec.id, text.make_console(stderr=True), log=False)
    else:
        text.render_boot(data, spec.id, _console())


@main.command()
@click.argument("source")
@click.option(
    "--json", "as_json", is_flag=True,
    help="Print the ESRT (schema efihandoff/esrt/1, raw numbers) instead of text.",
)
@_verbosity
@_errors
def esrt(source: str, as_json: bool) -> None:
    """The ESRT a source holds: its header, then each entry field by field, the raw number
    first and then its name as fwupd and fwts give it (fw_type, capsule flags by name,
    last_attempt_status), versions also in the usual dotted forms."""
    machine, _ = read_machine(source)
    data = esrt_json(machine)
    if as_json:
        for e in (data or {}).get("entries") or ():
            e["names"] = entry_names(e)  # the words beside the raw numbers
        click.echo(json.dumps({"schema": "efihandoff/esrt/1", "esrt": data}, indent=2))
    elif data is None:
        click.echo("no ESRT")
    else:
        text.render_esrt(data, _console())


@main.command()
@click.argument("source")
@click.option("--svg", "svg_out", type=click.Path(), help="Write the picture here.")
@click.option(
    "--path", "path_id", metavar="ID", shell_complete=_complete_path,
    help=f"Hatch what this path reclaims. {_PATH_HELP}.",
)
@click.option(
    "--json", "as_json", is_flag=True,
    help="Print the memory map (schema efihandoff/memmap/1) instead of text.",
)
@_verbosity
@_errors
def memmap(source: str, svg_out: str | None, path_id: str | None, as_json: bool) -> None:
    """The memory map a source holds, one descriptor per row (type, start, end, pages,
    attributes); --svg draws it, one band per descriptor, with the tables marked (and, with
    --path, the memory that path reclaims hatched)."""
    views = read_source(source)
    if svg_out:
        from efihandoff.outputs.svg import memmap_svg

        specs = [parse_path(path_id)] if path_id else None
        doc = explain_document(explain_views(views, specs))
        written = write_text(svg_out, memmap_svg(doc, path_id=specs[0].id if specs else None))
        _note(f"wrote {written}")
    machine, src = views[0].machine, views[0].source
    rows = memory_map_json(machine, str(src.kind))
    if as_json:
        click.echo(json.dumps({"schema": "efihandoff/memmap/1", "memory_map": rows}, indent=2))
    elif svg_out:
        pass  # the picture is the result; "wrote" went to stderr
    elif rows is None:
        click.echo("no memory map in this source")
    else:
        text.render_memory_map(rows, _console(), limit=None)


@main.command()
@click.argument("out", type=click.Path(), required=False)  # a directory: one-line OutputError
@click.option(
    "--json", "as_json", is_flag=True,
    help="Print what was written (schema efihandoff/collect/1) on stdout.",
)
@click.option(
    "--print-script",
    is_flag=True,
    help="Print the POSIX sh collector (same archive, no Python needed) and exit.",
)
@_verbosity
@_errors
def collect(out: str | None, as_json: bool, print_script: bool) -> None:
    """Copy this machine's /sys/firmware (ESRT, systab, runtime map, memmap; no efivars),
    /sys/hypervisor, kernel log and, in a Xen dom0, xl dmesg into OUT (.tar.gz, .tgz or .tar),
    read-only, for a bug report.

    Prints "wrote OUT", where the kernel log came from and what was skipped, on stderr (the
    archive is the result); --json prints the same on stdout."""
    from efihandoff.sources.collect import collect as do_collect
    from efihandoff.sources.collect import collector_script

    if print_script:
        click.echo(collector_script(), nl=False)
        return
    if out is None:
        raise UsageError("collect: give OUT (.tar.gz), or --print-script")
    if os.path.isdir(out):  # wrong kind of target, as --html onto a directory: exit 1
        raise OutputError(f"{out} is a directory")
    if not out.lower().endswith((".tar.gz", ".tgz", ".tar")):
        raise UsageError(f"collect: {out}: the archive's name must end in .tar.gz, .tgz or .tar")
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
    _note(f"wrote {report.path}: {len(report.files)} files, {report.size} bytes")
    _note(f"kernel log: {report.kernel_log_source or 'not readable (run as root?)'}")
    for path, why in report.skipped:
        _note(f"  skipped {path}: {why}")


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--path",
    "path_ids",
    multiple=True,
    metavar="ID",
    shell_complete=_complete_path,
    help=f"Paths to judge (default: every preset). {_PATH_HELP}.",
)
@click.option("--jobs", type=click.IntRange(min=1), help="Worker processes (default: every core).")
@click.option(
    "--json", "as_json", is_flag=True,
    help="Print the JSON document (schema efihandoff/survey/1) instead of text.",
)
@click.option(
    "--csv", "as_csv", is_flag=True,
    help="Print one CSV row per machine (boots, findings), then one per skipped input.",
)
@click.option(
    "--jsonl", "as_jsonl", is_flag=True,
    help="Stream one JSON object a line as inputs finish: each machine (the rows of --json's "
    "machines_detail), each skipped input ({path, skipped}).",
)
@_verbosity
@_errors
def survey(
    paths: tuple[str, ...],
    path_ids: tuple[str, ...],
    jobs: int | None,
    as_json: bool,
    as_csv: bool,
    as_jsonl: bool,
) -> None:
    """Many machines at once: directories (recursive), files and .tar/.tar.gz archives of kernel
    logs and /sys/firmware copies; per path, how many keep, lose or refuse each table, the ESRT
    memory types, the proposals' memory cost and the findings. The boots of one machine in a
    log count as one machine. A bad file inside a directory is counted, never fatal; an input
    path that does not exist or cannot be read exits 3. Progress (files, machines/s, ETA) goes
    to stderr when it is a terminal (not with -q)."""
    from efihandoff import survey as survey_mod
    from efihandoff.outputs.survey import progress_text, render_survey

    if sum((as_json, as_csv, as_jsonl)) > 1:
        raise UsageError("--json, --csv and --jsonl exclude each other")
    specs = _specs(path_ids)
    emit = None
    if as_jsonl:

        def emit(row: survey_mod.MachineRecord | survey_mod.Skipped) -> None:
            if isinstance(row, survey_mod.Skipped):
                click.echo(json.dumps({"path": row.path, "skipped": row.reason}))
            else:
                click.echo(json.dumps(row.to_json()))

    live = sys.stderr.isatty() and _level() >= 0 and not (as_jsonl and sys.stdout.isatty())
    if live:
        from rich.progress import BarColumn, Progress, TextColumn

        columns = (TextColumn("survey"), BarColumn(), TextColumn("{task.fields[line]}"))
        console = text.make_console(stderr=True)
        with Progress(*columns, transient=True, console=console) as bar:
            task = bar.add_task("survey", total=None, line="")
            result = survey_mod.run(
                paths,
                jobs=jobs,
                specs=specs,
                emit=emit,
                progress=lambda p: bar.update(
                    task, completed=p.done, total=p.total, line=progress_text(p)
                ),
            )
    else:
        result = survey_mod.run(paths, jobs=jobs, specs=specs, emit=emit)
    if as_jsonl:
        return
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    elif as_csv:
        click.echo(result.to_csv(), nl=False)
    else:
        render_survey(result, _console())
