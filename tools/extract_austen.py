"""Extract "Pride and Prejudice" from Debian's r-cran-janeaustenr package as plain text: the exact
steps that made ``src/learnflux/data/files/pride-and-prejudice.txt.gz`` (see the README there).

    apt-get download r-cran-janeaustenr          # 1.0.0-1, MIT (the package), the novels public domain
    dpkg-deb -x r-cran-janeaustenr_1.0.0-1_all.deb pkg
    python tools/extract_austen.py pkg/usr/lib/R/site-library/janeaustenr/data prideprejudice > pp.txt
    gzip -9 -n -c pp.txt > src/learnflux/data/files/pride-and-prejudice.txt.gz

The package keeps each novel as an R character vector (one element per line of the Project
Gutenberg text, without its licence header and footer) in R's lazy-load database: ``Rdata.rdx``
(a gzipped, serialized index of ``(offset, length)`` per object) and ``Rdata.rdb`` (the objects,
each a 4-byte big-endian length then zlib data of R's XDR serialization). This reads both with the
standard library only (no R) and prints the lines joined by newlines, with a final newline.
"""

from __future__ import annotations

import gzip
import struct
import sys
import zlib
from pathlib import Path

NAMES = ("emma", "mansfieldpark", "northangerabbey", "persuasion", "prideprejudice", "sensesensibility")
STRSXP, CHARSXP = 16, 9


def index(folder: Path) -> dict[str, tuple[int, int]]:
    """name -> (offset, length) in Rdata.rdb: the index's integer pairs (INTSXP of length 2,
    header ``00 00 00 0d 00 00 00 02``), in the order of its names (alphabetical)."""
    rdx = gzip.decompress((folder / "Rdata.rdx").read_bytes())
    pos = rdx.index(b"\x00\x00\x00\x0d\x00\x00\x00\x02")
    table = {}
    for name in NAMES:
        table[name] = struct.unpack(">ii", rdx[pos + 8 : pos + 16])
        pos += 16
    assert b"prideprejudice" in rdx
    return table


def lines(folder: Path, name: str) -> list[str]:
    offset, length = index(folder)[name]
    blob = (folder / "Rdata.rdb").read_bytes()[offset : offset + length]
    raw = zlib.decompress(blob[4:])
    assert len(raw) == struct.unpack(">i", blob[:4])[0] and raw[:2] == b"X\n"
    pos = 2 + 12  # format "X\n", then version, R version, minimal version
    (encoding,) = struct.unpack(">i", raw[pos : pos + 4])
    pos += 4 + encoding  # the native encoding's name (serialization version 3)
    flags, n = struct.unpack(">ii", raw[pos : pos + 8])
    pos += 8
    assert flags & 0xFF == STRSXP
    out = []
    for _ in range(n):
        flags, size = struct.unpack(">ii", raw[pos : pos + 8])
        pos += 8
        assert flags & 0xFF == CHARSXP
        if size == -1:  # NA
            out.append("")
            continue
        out.append(raw[pos : pos + size].decode("utf-8"))
        pos += size
    return out


if __name__ == "__main__":
    sys.stdout.write("\n".join(lines(Path(sys.argv[1]), sys.argv[2])) + "\n")
