"""The whole pipeline on hostile logs: a result or the project's own error, never a crash."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from efihandoff.errors import EfiHandoffError
from efihandoff.explain import explain
from efihandoff.outputs.json import explain_document
from efihandoff.sources import read_source

# Fragments of the lines the readers act on, with numbers left for hypothesis to choose.
_LINES = [
    "[    0.000000] Linux version {v}.{w}.0 (x@y) #1 SMP",
    "[    0.000000] efi: EFI v2.{w} by EDK II",
    "[    0.000000] efi: ACPI 2.0=0x{a:x} ESRT=0x{b:x} MEMATTR=0x{c:x} SMBIOS 3.0=0x{d:x} ",
    "[    0.000000] efi: (ESRT=0x{b:x} unusable) TPMEventLog=0x{c:x} ",
    "[    0.000000] efi: mem{w:02d}: [Boot Data   |   |  |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC]"
    " range=[0x{a:016x}-0x{b:016x}] (0MB)",
    "[    0.000000] efi: mem{w:02d}: [Runtime Data|RUN|  |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC]"
    " range=[0x{c:016x}-0x{d:016x}] (0MB)",
    "[    0.000000] BIOS-e820: [mem 0x{a:016x}-0x{b:016x}] usable",
    "[    0.000000] BIOS-e820: [mem 0x{c:016x}-0x{d:016x}] reserved",
    "[    0.000000] Xen: [mem 0x{a:016x}-0x{b:016x}] ACPI data",
    "[    0.004000] esrt: Reserving ESRT space from 0x{b:016x} to 0x{d:016x}.",
    "[    0.004000] esrt: ESRT header is not in the memory map.",
    "[    0.004000] esrt: ESRT memory map entry can only hold the header. (max: {w} size: 40)",
    "[    0.004000] esrt: ESRT does not fit on single memory map entry (size: 16 max: {v})",
    "[    0.004000] esrt: Unsupported ESRT version {v}.",
    "[    0.004000] esrt: ESRT says fw_resource_count has very large value {v}.",
    "[    0.004000] e820: update [mem 0x{a:08x}-0x{b:08x}] usable ==> reserved",
    "[    0.020000] Xen version: 4.{w}.{v} (preserve-AD)",
    "(XEN) Xen version 4.{w}.{v} (x@y) debug=n",
    "(XEN)  {a:013x}-{b:013x} type={w} attr={c:016x}",
    "[    0.000000] Hypervisor detected: Xen PV",
]
_addr = st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1).map(lambda x: x & ~0xFFF))
_line = st.builds(
    lambda t, a, b, c, d, v, w: t.format(a=a, b=b, c=c, d=d, v=v, w=w),
    st.sampled_from(_LINES),
    _addr,
    _addr,
    _addr,
    _addr,
    st.integers(0, 2**32),
    st.integers(0, 99),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_line, min_size=1, max_size=25))
@example(  # regression: a table in the last page of the address space (its page wraps)
    [
        "[    0.000000] Linux version 0.0.0 (x@y) #1 SMP",
        "[    0.000000] efi: ACPI 2.0=0x0 ESRT=0x0 MEMATTR=0x0 SMBIOS 3.0=0xfffffffffffff000 ",
    ]
)
def test_explain_never_crashes_on_hostile_logs(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "dmesg.txt"
        p.write_text("\n".join(lines) + "\n")
        try:
            views = read_source(p)
        except EfiHandoffError:
            return
        doc = explain_document(explain(views))
        assert doc["schema"] == "efihandoff/explain/1"
        for path in doc["paths"].values():
            for v in path["tables"].values():
                assert v["verdict"] in {
                    "intact",
                    "relocated",
                    "corrupt",
                    "refused",
                    "clobbered",
                    "absent",
                    "unknown",
                }
