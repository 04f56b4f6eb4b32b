"""looks_like_kernel_log reads the head's lines one at a time: the answer for the whole head
whichever line first shows a kernel line, the last unterminated line included."""

from __future__ import annotations

from efihandoff.sources.kernellog import MAX_LINE, looks_like_kernel_log

KERNEL = b"[    0.000000] Linux version 6.1.0-13-amd64 (builder@buildhost) #1 SMP"


def test_first_kernel_line_anywhere_in_the_head() -> None:
    prose = b"a note, not a log\n" * 50
    assert looks_like_kernel_log(KERNEL + b"\n" + prose)
    assert looks_like_kernel_log(prose + KERNEL + b"\n")
    assert looks_like_kernel_log(prose + KERNEL)  # no newline after it
    assert not looks_like_kernel_log(prose)
    assert not looks_like_kernel_log(prose.rstrip(b"\n"))


def test_overlong_lines_are_cut_as_the_reader_cuts_them() -> None:
    long = b"x" * (3 * MAX_LINE)
    assert looks_like_kernel_log(long + b"\n" + KERNEL + b"\n")
    # a kernel line past MAX_LINE bytes of one line is not a line of its own
    assert not looks_like_kernel_log(long + KERNEL + b"\n")
    assert looks_like_kernel_log(KERNEL + long + b"\n")
