"""One simulation per distinct question: :func:`simulate` remembers path results by a canonical
form of exactly what :func:`efihandoff.paths.simulate.simulate` reads.

What a simulation reads (``paths/simulate.py`` ``simulate``/``_firmware``/``_Judge`` and
``edk2/boot_services.py`` ``BootServices.from_machine``): the machine's memory map, system table
and its address, configuration-table array address and entries, memory (its bytes, which of
them are known, what unwritten and scrubbed pages hold), firmware vendor and pool state; and
the path's parameters. Its id and description only label the result. The key is those values
pickled (equal pickles of these plain values mean equal values; the immutable parts pickled once
per machine and per spec object, the memory, which can be written, on every call), so two
machines share a result only when a simulation cannot tell them apart: machines of one model, the
observed stack that equals a preset, one reduced candidate asked again. Outside
:func:`words_only` no address is shifted and nothing is abstracted, so a hit returns what a
fresh simulation would, with the caller's spec. Memory of another kind (a dump read lazily)
is not keyed: those machines are simulated.

Results are kept in a bounded LRU per process (a survey worker keeps its own). Every caller
gets its own containers (tables, log, sysfs, ...), so nothing a caller changes leaks into the
next hit; inside :func:`words_only` a caller that only reads (``shared=True``: explain's
candidates, a group sum's groups) is given the stored result itself. ``EFIHANDOFF_MEMO=0``
or :func:`disabled` turns the cache off (the differential tests compare both ways).

Inside :func:`words_only` (``survey``, which keeps verdict words and costs, never reasons) a
machine reduced to one descriptor's tables is asked at its canonical address
(:mod:`efihandoff.paths.canonical`) with the path keyed on what its words read of the versions
(:func:`words_spec_key`), and a whole machine is answered from its table groups where
:mod:`efihandoff.paths.grouped` can (else simulated as it is): machines whose tables lie in the
same kind of placement share simulations. Reasons and log lines then name canonical addresses
and other versions; each table's firmware address is its own. Results asked there are kept
without log, maps or spans (words only, apart from explain's store), so thousands fit.
"""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TypeVar

from efihandoff.edk2 import PoolState
from efihandoff.machine import Machine, PhysicalMemory
from efihandoff.paths import canonical as canonical_mod
from efihandoff.paths import grouped
from efihandoff.paths import simulate as simulate_mod
from efihandoff.paths.linux import version_rules as linux_version_rules
from efihandoff.paths.presets import PathSpec
from efihandoff.paths.simulate import PathResult
from efihandoff.paths.verdict import TableVerdict
from efihandoff.uefi.memmap import MemoryMap

_T = TypeVar("_T")
MAX_ENTRIES = 256  # results kept per process (a full machine's result holds its whole map)
MAX_MAPS = 64  # machines and specs whose key bytes are kept
MAX_PLACEMENTS = 512  # reduced machines (a machine's candidates and groups) placed and keyed
ENV = "EFIHANDOFF_MEMO"


@dataclass
class Stats:
    """Calls answered from the cache, simulated and stored, and simulated without a key."""

    hits: int = 0
    misses: int = 0
    unkeyed: int = 0
    grouped: int = 0  # whole machines answered from their groups (words_only)


_cache: OrderedDict[Hashable, PathResult] = OrderedDict()
_canonical: OrderedDict[Hashable, PathResult] = OrderedDict()  # words_only: moved machines
# id -> (the object, held so the id is not reused, ..., its key bytes), oldest first
_statics: dict[int, tuple[Machine, tuple[object, ...], bytes]] = {}
# Made once per object (:func:`_per_object`): id -> (the object, what was made of it).
_specs: dict[int, tuple[object, bytes]] = {}
# words_only: versions by what they change, and whether placements may move for them
_word_specs: dict[int, tuple[object, tuple[bytes, bool]]] = {}
_placements: dict[int, tuple[object, canonical_mod.Placement | None]] = {}  # reduced machines
_plans: dict[int, tuple[object, grouped.Plan | None]] = {}  # a machine's groups
_stats = Stats()
_off = 0  # depth of disabled() contexts
_words = 0  # depth of words_only() contexts
_words_env = True  # EFIHANDOFF_MEMO on entering the outermost words_only()


def enabled() -> bool:
    """Whether :func:`simulate` uses the cache (not inside :func:`disabled`, nor with
    ``EFIHANDOFF_MEMO=0``; inside :func:`words_only`, as the variable was on entering it)."""
    return _off == 0 and (_words_env if _words else _env_allows())


def _env_allows() -> bool:
    return os.environ.get(ENV, "1") not in ("0", "no", "off", "false")


@contextmanager
def disabled() -> Iterator[None]:
    """Simulate every call afresh inside the block."""
    global _off
    _off += 1
    try:
        yield
    finally:
        _off -= 1


@contextmanager
def words_only() -> Iterator[None]:
    """Inside the block, reduced one-table machines are simulated at their canonical address
    (results whose words are exact and whose reasons name other addresses)."""
    global _words, _words_env
    if not _words:
        _words_env = _env_allows()  # read once: survey asks ~100 questions per machine
    _words += 1
    try:
        yield
    finally:
        _words -= 1


def clear() -> None:
    """Forget every result and zero the counters."""
    _cache.clear()
    _canonical.clear()
    _placements.clear()
    _plans.clear()
    _statics.clear()
    _specs.clear()
    _word_specs.clear()
    _stats.hits = _stats.misses = _stats.unkeyed = _stats.grouped = 0


def stats() -> Stats:
    """A copy of this process's counters."""
    return replace(_stats)


def machine_key(machine: Machine) -> tuple[bytes, bytes | None] | None:
    """Everything a simulation reads of ``machine`` as bytes (pickles of plain values: equal
    pickles mean equal values; equal values pickled otherwise only miss): the immutable parts
    (map, system table, configuration tables, vendor, pool state), made once per machine
    object while those fields stay the same objects, and the memory's state, made each call
    (memory can be written). None when some part cannot be keyed (memory that is not a
    :class:`PhysicalMemory`, an unknown pool-state object)."""
    memory = machine.memory
    if memory is None:
        mem_key: bytes | None = None
    elif type(memory) is PhysicalMemory:
        # pages, known-byte masks, scrubbed runs, background, seed
        mem_key = pickle.dumps(memory, protocol=pickle.HIGHEST_PROTOCOL)
    else:
        return None
    state = machine.firmware_state
    if state is not None and type(state) is not PoolState:
        return None
    fields = (
        machine.memory_map,
        machine.system_table_address,
        machine.system_table,
        machine.config_table_address,
        machine.config_tables,
        machine.firmware_vendor,
        state,
    )
    held = _statics.get(id(machine))
    if held is not None and held[0] is machine and all(
        x is y for x, y in zip(held[1], fields, strict=True)
    ):
        return held[2], mem_key
    tables = fields[4]
    static = pickle.dumps(
        (
            map_key(machine.memory_map),
            *fields[1:4],
            # plain values: a dataclass pickles through copyreg, ~13 us for one table
            None if tables is None else tuple((t.guid.value, t.table) for t in tables),
            *fields[5:],
        ),
        protocol=pickle.HIGHEST_PROTOCOL,
    )
    _statics[id(machine)] = (machine, fields, static)  # held, so the id is not reused
    if len(_statics) > MAX_MAPS:
        del _statics[next(iter(_statics))]
    return static, mem_key


def map_key(mm: MemoryMap | None) -> bytes | None:
    """A memory map as bytes (every field of every descriptor, the stride and version)."""
    if mm is None:
        return None
    rows = tuple(
        (d.type, d.phys_addr, d.num_pages, d.attribute, d.virt_addr) for d in mm.descriptors
    )
    return pickle.dumps((mm.desc_size, mm.desc_version, rows), protocol=pickle.HIGHEST_PROTOCOL)


def spec_key(spec: PathSpec) -> PathSpec:
    """The path's parameters without its labels (id, description)."""
    return replace(spec, id="", description="")


def _per_object(
    store: dict[int, tuple[object, _T]], obj: object, limit: int, make: Callable[[], _T]
) -> _T:
    """``make()`` once per object ``obj`` (never changed once made: specs, and machines this
    module is handed), kept beside it in ``store`` so its id is not reused; past ``limit``
    objects the oldest is dropped."""
    held = store.get(id(obj))
    if held is not None and held[0] is obj:
        return held[1]
    made = make()
    store[id(obj)] = (obj, made)
    if len(store) > limit:
        del store[next(iter(store))]
    return made


def _spec_bytes(spec: PathSpec) -> bytes:
    return _per_object(
        _specs, spec, MAX_MAPS, lambda: pickle.dumps(spec_key(spec), pickle.HIGHEST_PROTOCOL)
    )


def words_spec_key(spec: PathSpec) -> tuple[object, ...]:
    """What a simulation's words read of a path: its fields without the versions, the Xen
    features the version gives (presets.PathSpec's properties) and what the Linux rules read of
    the version (:func:`efihandoff.paths.linux.version_rules`). Versions that differ only in
    the words of log lines and reasons share one key."""
    bare = replace(
        spec, id="", description="", linux=(), xen=None if spec.xen is None else ()
    )
    xen = (
        spec.xen_knows_esrt,
        spec.xen_relocates_esrt,
        spec.xen_esrt_size_fixed,
        spec.xen_runtime_attr_reserved,
    )
    return (bare, spec.native, xen, linux_version_rules(spec))


def _words_spec_bytes(spec: PathSpec) -> tuple[bytes, bool]:
    """:func:`words_spec_key` pickled, and whether the path's own address rules leave every
    canonical class alone (canonical.applies), made once per spec object."""
    return _per_object(
        _word_specs,
        spec,
        MAX_MAPS,
        lambda: (
            pickle.dumps(words_spec_key(spec), pickle.HIGHEST_PROTOCOL),
            canonical_mod.applies(spec),
        ),
    )


def simulate(machine: Machine, spec: PathSpec, *, shared: bool = False) -> PathResult:
    """:func:`efihandoff.paths.simulate.simulate`, answered from the cache when the same
    question was asked before in this process. ``shared``: inside :func:`words_only`, a
    caller that only reads the result may be given the cached one itself (no containers of
    its own; its ``spec`` may be another path with the same words)."""
    if not enabled():
        return simulate_mod.simulate(machine, spec)
    if _words:
        placed = _placement(machine)
        if placed is None:
            plan = _plan(machine)
            whole = grouped.combine(plan, spec, _read_only) if plan is not None else None
            if whole is not None:
                _stats.grouped += 1
                return whole
        else:
            words_key, moves = _words_spec_bytes(spec)
            if moves:
                return _words_result(placed, placed.delta, (words_key, placed.key), spec, shared)
    mkey = machine_key(machine)
    if mkey is None:
        _stats.unkeyed += 1
        return simulate_mod.simulate(machine, spec)
    if _words:  # kept slim beside the canonical results: no whole map held per entry
        return _words_result(machine, 0, (_spec_bytes(spec), *mkey), spec, shared)
    key = (_spec_bytes(spec), *mkey)
    hit = _cache.get(key)
    if hit is not None:
        _cache.move_to_end(key)
        _stats.hits += 1
        return own_copy(hit, spec)
    result = simulate_mod.simulate(machine, spec)
    _stats.misses += 1
    _cache[key] = own_copy(result, spec)
    if len(_cache) > MAX_ENTRIES:
        _cache.popitem(last=False)
    return result


def _read_only(machine: Machine, spec: PathSpec) -> PathResult:
    """:func:`simulate` for a caller that only reads the result (grouped.combine)."""
    return simulate(machine, spec, shared=True)


def _words_result(
    machine: Machine | canonical_mod.Placement,
    delta: int,
    key: tuple[object, ...],
    spec: PathSpec,
    shared: bool = False,
) -> PathResult:
    """The words of ``machine``'s simulation (kept slim), ``machine`` being a placement moved
    by ``delta`` (built only when simulated): each table's firmware address where it really is
    (explain looks tables up by it); other addresses stay canonical. ``shared``: the stored
    result itself where nothing moved, else a shallow copy with only the tables its own."""
    hit = _canonical.get(key)
    if hit is not None:
        _canonical.move_to_end(key)
        _stats.hits += 1
    else:
        if isinstance(machine, canonical_mod.Placement):
            machine = machine.machine
        hit = _words_of(simulate_mod.simulate(machine, spec))
        _stats.misses += 1
        _canonical[key] = hit
        if len(_canonical) > canonical_mod.MAX_ENTRIES:
            _canonical.popitem(last=False)
    if shared:
        if not delta:
            return hit
        out = object.__new__(PathResult)
        out.__dict__.update(hit.__dict__)
        out.tables = dict(hit.tables)
    else:
        out = own_copy(hit, spec)
    if delta:
        for guid, tv in hit.tables.items():
            if tv.address is not None:
                moved = object.__new__(TableVerdict)  # frozen: one field set, as replace() would
                moved.__dict__.update(tv.__dict__)
                moved.__dict__["address"] = tv.address - delta
                out.tables[guid] = moved
    return out


def _plan(machine: Machine) -> grouped.Plan | None:
    return _per_object(_plans, machine, MAX_MAPS, lambda: grouped.plan(machine))


def _placement(machine: Machine) -> canonical_mod.Placement | None:
    """The canonical placement of a reduced machine, made once per machine object (the
    placement's machine is this module's own: nothing writes to it)."""
    return _per_object(
        _placements, machine, MAX_PLACEMENTS, lambda: canonical_mod.canonical(machine)
    )


_EMPTY: list[object] = []  # shared by every stored words result (hits copy it): one GC object


def _words_of(result: PathResult) -> PathResult:
    """What a words_only caller reads of a result, kept small (no log, maps, spans, kexec) and
    light on the garbage collector (thousands are kept): the empty lists shared."""
    out = own_copy(result, result.spec)
    out.log = out.reclaimed = out.esrt_differences = _EMPTY  # type: ignore[assignment]
    out.memmap, out.kexec = None, {}
    return out


def own_copy(result: PathResult, spec: PathSpec) -> PathResult:
    """``result`` for ``spec`` with containers of its own (their items are immutable)."""
    out = object.__new__(PathResult)
    out.__dict__.update(result.__dict__)  # every field, as the dataclass holds them
    out.spec = spec
    out.tables = dict(result.tables)
    out.log = list(result.log)
    out.sysfs = None if result.sysfs is None else dict(result.sysfs)
    out.fwupd_devices = None if result.fwupd_devices is None else list(result.fwupd_devices)
    out.kexec = dict(result.kexec)
    out.esrt_differences = list(result.esrt_differences)
    out.reclaimed = list(result.reclaimed)
    return out


__all__ = ["ENV", "MAX_ENTRIES", "Stats", "clear", "disabled", "enabled", "machine_key",
           "own_copy", "simulate", "spec_key", "stats", "words_only", "words_spec_key"]
