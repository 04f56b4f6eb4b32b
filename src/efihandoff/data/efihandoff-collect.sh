#!/bin/sh
# efihandoff-collect.sh: what this machine shows of its EFI configuration tables (the ESRT above
# all), in a .tar.gz that `efihandoff explain OUT.tar.gz` reads on any machine. For Xen dom0s
# without Python 3.11 (a Qubes dom0 is offline, XCP-ng's dom0 runs an old Python); elsewhere
# `efihandoff collect OUT.tar.gz` writes the same archive.
#
#   usage: sh efihandoff-collect.sh OUT.tar.gz      (as root: the ESRT entries and xl dmesg
#                                                   need it)
#
# Needs sh, cat, tar, mkdir, mv, rm; uses gzip, head, tail, wc, timeout, id, date, dmesg,
# journalctl and xl when present. Only reads: never copies efivars, never writes under /sys,
# /dev or /proc (the work directory sits beside OUT and is removed at the end); `xl dmesg` is
# never given -c (which would clear Xen's ring).
#
# The archive holds, under the paths they have on the machine:
#   sys/firmware/efi/{systab,config_table,fw_platform_size,fw_vendor,runtime}
#   sys/firmware/efi/esrt/**  sys/firmware/efi/runtime-map/**  sys/firmware/memmap/**
#   sys/hypervisor/{type,guest_type,version/*,properties/*,compilation/{compiler,compile_date}}
#   sys/hypervisor/start_flags/**  proc/xen/capabilities  (never the serial-like uuid)
#   dmesg.txt (the kernel log)  xl-dmesg.txt (a Xen dom0: xl dmesg)  MANIFEST.txt
# Files are read with cat (or head -c, to bound them): sysfs files claim 4096 bytes whatever they
# hold, so tar of /sys itself would store padding or nothing.
#
# For tests: EFIHANDOFF_ROOT names the tree read instead of / (default /); commands (dmesg,
# journalctl, xl) are the ones PATH finds.

LC_ALL=C
export LC_ALL
unset CDPATH
umask 022

MAX_VALUE=65536          # one sysfs file (sysfs attributes hold at most a page)
MAX_LOG=67108864         # dmesg.txt
MAX_XL=16777216          # xl-dmesg.txt (Xen's console ring is far smaller)
MAX_FILES=20000          # files taken from the subtrees (a real machine has a few hundred)
MAX_DEPTH=8              # directory levels below a subtree (real ones have 2)
XL_TIMEOUT=10            # seconds for xl dmesg
LOG_TIMEOUT=20           # seconds for dmesg, journalctl

SUBTREES="sys/firmware/efi/esrt sys/firmware/efi/runtime-map sys/firmware/memmap
sys/hypervisor/start_flags"
SINGLE_FILES="sys/firmware/efi/systab sys/firmware/efi/config_table
sys/firmware/efi/fw_platform_size sys/firmware/efi/fw_vendor sys/firmware/efi/runtime
sys/hypervisor/type sys/hypervisor/guest_type sys/hypervisor/version/major
sys/hypervisor/version/minor sys/hypervisor/version/extra sys/hypervisor/properties/capabilities
sys/hypervisor/properties/changeset sys/hypervisor/properties/features
sys/hypervisor/properties/pagesize sys/hypervisor/properties/virtual_start
sys/hypervisor/properties/buildid sys/hypervisor/compilation/compiler
sys/hypervisor/compilation/compile_date proc/xen/capabilities"

PROG=efihandoff-collect.sh

usage() {
    echo "usage: sh $PROG OUT.tar.gz" >&2
    echo "  Copies /sys/firmware (no efivars), /sys/hypervisor, the kernel log and, in a Xen" >&2
    echo "  dom0, xl dmesg into OUT.tar.gz, read-only. Run it as root. Then, on any machine:" >&2
    echo "  efihandoff explain OUT.tar.gz" >&2
    exit 2
}

die() { # STATUS MESSAGE
    printf '%s: %s\n' "$PROG" "$2" >&2
    exit "$1"
}

say() {
    printf '%s\n' "$*"
}

[ $# -eq 1 ] || usage
case $1 in
    "" | -*) usage ;;
esac
OUT=$1

# -- the tree to read --------------------------------------------------------------------------
ROOT=${EFIHANDOFF_ROOT:-/}
rroot=$(cd "$ROOT" 2>&1 && pwd -P) || die 2 "EFIHANDOFF_ROOT=$ROOT: not a directory"
ROOT=$rroot
case $ROOT in
    /) R= ;;
    *) R=$ROOT ;;
esac

# -- the target: never under /sys, /dev, /proc (nor the tree's) ---------------------------------
case $OUT in
    */*) odir=${OUT%/*} oname=${OUT##*/} ;;
    *) odir=. oname=$OUT ;;
esac
[ -n "$odir" ] || odir=/
[ -n "$oname" ] || die 1 "$OUT: is a directory"
rdir=$(cd "$odir" 2>&1 && pwd -P) || die 1 "$OUT: directory $odir does not exist"
target=${rdir%/}/$oname
for bad in /sys /dev /proc ${R:+"$R/sys"} ${R:+"$R/dev"} ${R:+"$R/proc"}; do
    case $target in
        "$bad"/*) die 1 "$OUT: refusing to write under $bad" ;;
    esac
done
[ -d "$target" ] && die 1 "$OUT: is a directory"
[ -L "$target" ] && die 1 "$OUT: is a symlink (give the path it points to)"

# -- the work directory, beside the target -----------------------------------------------------
work=
cleanup() {
    [ -n "$work" ] && rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
n=0
while :; do
    w=${rdir%/}/.efihandoff-collect.$$.$n
    if mkdir_err=$(mkdir -m 700 "$w" 2>&1); then
        work=$w
        break
    fi
    n=$((n + 1))
    [ $n -lt 20 ] || die 1 "$OUT: cannot create a work directory in $rdir: ${mkdir_err##*: }"
done
stage=$work/stage
mkdir "$stage" || die 1 "$OUT: cannot write in $rdir"
: >"$work/files"
: >"$work/skipped"
: >"$work/lognotes"
NULL=$work/discard

have() {
    command -v "$1" >"$NULL" 2>&1
}

find_cmd() { # NAME [DIRS]: the first executable NAME on PATH (then DIRS), else what
    #          `command -v` finds (BusyBox sh runs its own applets before PATH: the dmesg,
    #          journalctl, xl run are PATH's)
    _ifs=$IFS
    IFS=:
    for _d in $PATH${2:+:$2}; do
        if [ -f "${_d:-.}/$1" ] && [ -x "${_d:-.}/$1" ]; then
            IFS=$_ifs
            printf '%s\n' "${_d:-.}/$1"
            return 0
        fi
    done
    IFS=$_ifs
    command -v "$1" 2>"$NULL"
}
HEAD_C=
if printf 'ab' | head -c 1 >"$NULL" 2>&1 && [ "$(printf 'ab' | head -c 1)" = a ]; then
    HEAD_C=1
fi
TAIL_C=
if printf 'ab' | tail -c 1 >"$NULL" 2>&1 && [ "$(printf 'ab' | tail -c 1)" = b ]; then
    TAIL_C=1
fi
WC=
have wc && WC=1
TIMEOUT=
have timeout && TIMEOUT=1

nfiles=0     # files written into the stage (MANIFEST.txt aside)
nskipped=0
walked=0     # files taken from the subtrees
full=

skip() { # PATH WHY
    printf '  %s: %s\n' "$1" "$2" >>"$work/skipped"
    nskipped=$((nskipped + 1))
}

took() { # ARCHIVE-PATH
    printf '  %s\n' "$1" >>"$work/files"
    nfiles=$((nfiles + 1))
}

lognote() {
    printf '  %s\n' "$1" >>"$work/lognotes"
}

size_of() { # FILE: its size in bytes, or nothing without wc
    [ -n "$WC" ] && echo $(($(wc -c <"$1")))
}

last_error() { # FILE: the last line of an error output, without the "prog: path: " prefix
    _last=
    while IFS= read -r _line || [ -n "$_line" ]; do
        [ -n "$_line" ] && _last=$_line
    done <"$1"
    printf '%s' "${_last##*: }"
}

capped() { # CAP: stdin to stdout, at most CAP bytes when head -c is there
    if [ -n "$HEAD_C" ]; then head -c "$1"; else cat; fi
}

copy_file() { # REL: copy ROOT/REL to the stage; quiet when missing
    _src=$R/$1
    if [ -L "$_src" ]; then
        if [ -d "$_src" ]; then
            skip "/$1" "symlink to a directory: not followed"
        else
            skip "/$1" "symlink: not followed"
        fi
        return
    fi
    [ -e "$_src" ] || return
    if [ -d "$_src" ]; then
        skip "/$1" "is a directory"
        return
    fi
    if [ ! -f "$_src" ]; then
        skip "/$1" "not a regular file"
        return
    fi
    if [ ! -r "$_src" ]; then
        skip "/$1" "Permission denied"
        return
    fi
    _dst=$stage/$1
    mkdir -p "${_dst%/*}"
    if [ -n "$HEAD_C" ]; then
        head -c $((MAX_VALUE + 1)) "$_src" >"$_dst" 2>"$work/err"
    else
        cat "$_src" >"$_dst" 2>"$work/err"
    fi
    _status=$?
    if [ $_status -ne 0 ]; then
        _why=$(last_error "$work/err")
        rm -f "$_dst"
        skip "/$1" "${_why:-cannot read (status $_status)}"
        return
    fi
    _size=$(size_of "$_dst")
    if [ -n "$_size" ] && [ "$_size" -gt $MAX_VALUE ]; then
        rm -f "$_dst"
        skip "/$1" "larger than $MAX_VALUE bytes"
        return
    fi
    took "$1"
}

walk() { # REL DEPTH: the directory ROOT/REL, already made in the stage
    for _p in "$R/$1"/* "$R/$1"/.[!.]* "$R/$1"/..?*; do
        [ -e "$_p" ] || [ -L "$_p" ] || continue
        _n=${_p##*/}
        case $_n in
            *'
'*)
                skip "/$1" "a name holding a newline: left out"
                continue
                ;;
        esac
        if [ -d "$_p" ] && [ ! -L "$_p" ]; then
            if [ "$2" -ge $MAX_DEPTH ]; then
                skip "/$1/$_n" "more than $MAX_DEPTH directory levels: left out"
                continue
            fi
            mkdir -p "$stage/$1/$_n" && walk "$1/$_n" $(($2 + 1))
            # (the loop variables changed in the call; only its list goes on)
            continue
        fi
        if [ "$walked" -ge $MAX_FILES ]; then
            [ -n "$full" ] || skip "/$1" "more than $MAX_FILES files: rest left out"
            full=1
            return
        fi
        walked=$((walked + 1))
        copy_file "$1/$_n"
    done
}

# -- /sys/firmware, /sys/hypervisor, /proc/xen -------------------------------------------------
for sub in $SUBTREES; do
    [ -d "$R/$sub" ] && [ ! -L "$R/$sub" ] || continue
    mkdir -p "$stage/$sub" && walk "$sub" 0
done
for rel in $SINGLE_FILES; do
    copy_file "$rel"
done
[ -d "$R/sys/firmware/efi" ] ||
    skip /sys/firmware/efi "missing: this kernel was not booted through EFI"

# -- the kernel log ----------------------------------------------------------------------------
run_capped() { # CAP SECONDS OUTFILE COMMAND ARGS...: status in $run_status, stderr in $work/err
    _cap=$1 _secs=$2 _outf=$3
    shift 3
    if [ -n "$TIMEOUT" ]; then
        set -- timeout "$_secs" "$@"
    fi
    { "$@" </dev/null 2>"$work/err"; echo $? >"$work/status"; } | capped "$_cap" >"$_outf"
    run_status=1
    IFS= read -r run_status <"$work/status" || run_status=1
    run_cut=
    _size=$(size_of "$_outf")
    if [ -n "$HEAD_C" ] && [ -n "$_size" ] && [ "$_size" -ge "$_cap" ]; then
        run_cut=1 # head stopped reading: the command's status says only that
        run_status=0
    fi
}

starts_boot() { # FILE: its first lines hold the boot's first kernel message
    _i=0
    while [ $_i -lt 5 ] && IFS= read -r _line; do
        case $_line in
            *"Linux version "* | *"Booting Linux on physical CPU"*) return 0 ;;
        esac
        _i=$((_i + 1))
    done <"$1"
    return 1
}

log_source=
partial=
if dmesg_cmd=$(find_cmd dmesg); then
    run_capped $MAX_LOG $LOG_TIMEOUT "$work/log.dmesg" "$dmesg_cmd"
    if [ "$run_status" -ne 0 ]; then
        _why=$(last_error "$work/err")
        lognote "dmesg: ${_why:-exit status $run_status}"
    elif [ ! -s "$work/log.dmesg" ]; then
        lognote "dmesg: empty"
    elif starts_boot "$work/log.dmesg"; then
        lognote "dmesg: read"
        log_source=dmesg
        mv "$work/log.dmesg" "$stage/dmesg.txt"
    else
        lognote "dmesg: ring buffer wrapped (no 'Linux version' line at its start): early boot lines lost"
        partial=1
    fi
else
    lognote "dmesg: not found"
fi
if [ -z "$log_source" ]; then
    if journalctl_cmd=$(find_cmd journalctl); then
        run_capped $MAX_LOG $LOG_TIMEOUT "$work/log.journal" "$journalctl_cmd" -k -b 0 \
            --no-pager -q
        if [ "$run_status" -ne 0 ]; then
            _why=$(last_error "$work/err")
            lognote "journalctl -k -b 0: ${_why:-exit status $run_status}"
        elif [ ! -s "$work/log.journal" ]; then
            lognote "journalctl -k -b 0: empty"
        else
            lognote "journalctl -k -b 0: read"
            log_source="journalctl -k -b 0"
            mv "$work/log.journal" "$stage/dmesg.txt"
        fi
    else
        lognote "journalctl: not found"
    fi
fi
for f in /var/log/dmesg /var/log/kern.log; do
    [ -z "$log_source" ] || break
    if [ ! -e "$R$f" ]; then
        lognote "$f: missing"
        continue
    fi
    if [ -n "$TAIL_C" ]; then
        tail -c $MAX_LOG "$R$f" >"$work/log.file" 2>"$work/err"
    else
        cat "$R$f" >"$work/log.file" 2>"$work/err"
    fi
    _status=$?
    if [ $_status -ne 0 ]; then
        _why=$(last_error "$work/err")
        lognote "$f: ${_why:-cannot read}"
    elif [ ! -s "$work/log.file" ]; then
        lognote "$f: empty"
    else
        lognote "$f: read"
        log_source=$f
        mv "$work/log.file" "$stage/dmesg.txt"
    fi
done
if [ -z "$log_source" ] && [ -n "$partial" ]; then
    log_source=dmesg
    mv "$work/log.dmesg" "$stage/dmesg.txt"
fi
[ -z "$log_source" ] || took dmesg.txt

# -- xl dmesg (a Xen dom0) ---------------------------------------------------------------------
sbin= # a user's PATH may lack the sbin directories, where xl lives (not for a fake tree)
[ -n "$R" ] || sbin=/usr/local/sbin:/usr/sbin:/sbin
dom0=
dom0_why="not on Xen"
caps=
if [ -f "$R/proc/xen/capabilities" ] && caps=$(cat "$R/proc/xen/capabilities" 2>"$NULL"); then
    case $caps in
        *control_d*) dom0=1 dom0_why="/proc/xen/capabilities contains control_d" ;;
        *) dom0_why="/proc/xen/capabilities lacks control_d (a domU)" ;;
    esac
elif [ -f "$R/sys/hypervisor/type" ] && [ "$(cat "$R/sys/hypervisor/type" 2>"$NULL")" = xen ]; then
    dom0=1 dom0_why="/sys/hypervisor/type is xen"
fi
if [ -z "$dom0" ]; then
    xl_note="not run: not a Xen dom0 ($dom0_why)"
elif ! xl=$(find_cmd xl "$sbin"); then
    xl_note="not run: xl not found on PATH"
    skip "xl dmesg" "$xl_note"
else
    run_capped $MAX_XL $XL_TIMEOUT "$work/xl.out" "$xl" dmesg
    _size=$(size_of "$work/xl.out")
    if [ -n "$TIMEOUT" ] && [ "$run_status" -eq 124 ]; then
        xl_why="timed out after $XL_TIMEOUT s"
    elif [ "$run_status" -ne 0 ]; then
        _why=$(last_error "$work/err")
        xl_why="exit status $run_status${_why:+: $_why}"
        if have id && [ "$(id -u 2>"$NULL")" != 0 ]; then
            xl_why="$xl_why (xl dmesg needs root)"
        fi
        rm -f "$work/xl.out"
    elif [ -n "$run_cut" ]; then
        xl_why="output cut at $MAX_XL bytes"
    else
        xl_why=
    fi
    if [ -s "$work/xl.out" ]; then
        mv "$work/xl.out" "$stage/xl-dmesg.txt"
        took xl-dmesg.txt
        xl_note="read${_size:+, $_size bytes}${xl_why:+ ($xl_why: incomplete)}"
    else
        xl_note=${xl_why:-printed nothing}
        skip "xl dmesg" "$xl_note"
    fi
    xl_note="$xl dmesg: $xl_note"
fi

# -- MANIFEST.txt ------------------------------------------------------------------------------
kernel=unknown
if [ -f "$R/proc/sys/kernel/osrelease" ]; then
    IFS= read -r kernel 2>"$NULL" <"$R/proc/sys/kernel/osrelease" || [ -n "$kernel" ] ||
        kernel=unknown
fi
created=unknown
have date && created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
{
    say "$PROG (the POSIX sh collector of efihandoff)"
    say "created: $created"
    say "root: $ROOT"
    say "kernel: $kernel"
    say "kernel log: ${log_source:-not readable}"
    cat "$work/lognotes"
    say "xl dmesg: $xl_note"
    say "files ($nfiles):"
    cat "$work/files"
    say "skipped ($nskipped):"
    cat "$work/skipped"
    while IFS= read -r _line; do
        case $_line in
            *esrt/entries*)
                say "note: the ESRT entry files need root (CAP_SYS_ADMIN); run $PROG as root"
                break
                ;;
        esac
    done <"$work/skipped"
} >"$stage/MANIFEST.txt"

# -- the archive -------------------------------------------------------------------------------
set --
for top in sys proc dmesg.txt xl-dmesg.txt MANIFEST.txt; do
    [ -e "$stage/$top" ] && set -- "$@" "$top"
done
(cd "$stage" && tar -cf "$work/archive.tar" "$@") 2>"$work/err" ||
    die 1 "$OUT: tar failed: $(last_error "$work/err")"
compressed=
if have gzip; then
    gzip -c <"$work/archive.tar" >"$work/archive.out" 2>"$work/err" ||
        die 1 "$OUT: gzip failed: $(last_error "$work/err")"
    compressed=1
else
    mv "$work/archive.tar" "$work/archive.out" || die 1 "$OUT: cannot write in $rdir"
fi
mv -f "$work/archive.out" "$target" 2>"$work/err" ||
    die 1 "$OUT: cannot write: $(last_error "$work/err")"

size=$(size_of "$target")
say "wrote $target: $((nfiles + 1)) files${size:+, $size bytes}"
[ -n "$compressed" ] ||
    say "  (gzip not found: an uncompressed tar, which efihandoff reads all the same)"
say "kernel log: ${log_source:-not readable (run as root?)}"
say "xl dmesg: $xl_note"
while IFS= read -r _line; do
    say "  skipped ${_line#  }"
done <"$work/skipped"
say "Read it on any machine with efihandoff (Python 3.11+): efihandoff explain $oname"
say "(from a Qubes dom0, copy it to a qube first: qvm-copy-to-vm QUBE $target)"
exit 0
