#!/usr/bin/env python3
"""Cuts the bundled fixtures into small seed captures for the capture_reader fuzz
target (docs/fuzzing.md): the section header and interface blocks, the first N
records and the final statistics blocks, so every block type is in the seed while
each input stays a few KiB (libFuzzer mutates small inputs far faster).

    python3 fuzz/seeds/cut_captures.py   # from the repository root
"""
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "fuzz/seeds/capture_reader"


def blocks(b):
    off = 0
    while off + 8 <= len(b):
        ty, n = struct.unpack_from("<II", b, off)
        yield ty, b[off:off + n]
        off += n


for fixture in sorted((ROOT / "fixtures/captures").glob("*.pcapng")):
    bs = list(blocks(fixture.read_bytes()))
    head = [b for ty, b in bs if ty in (0x0A0D0D0A, 1)]
    epbs = [b for ty, b in bs if ty == 6]
    isbs = [b for ty, b in bs if ty == 5]
    for n in (1, 8):
        out = OUT / f"{fixture.stem}-{n}.pcapng"
        out.write_bytes(b"".join(head + epbs[:n] + isbs))
        print(out.relative_to(ROOT), out.stat().st_size, "bytes")
