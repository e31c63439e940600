"""A seeded mutation fuzzer for saved models (``lf.load``), shared by ``tests/test_fuzz_load.py``
(a bounded run in the suite) and ``tools/fuzz_load.py`` (the larger run).

:func:`mutants` derives hostile files from real saved models: truncations, byte flips, hostile
JSON headers (huge or deep values, abstract classes, 20,000 layers, bad references), tampered
arrays (other dtypes, shapes, NaN, pickles, lying ``.npy`` headers), zip tricks (duplicate,
extra, encrypted, overlapping or zip-bomb members) and files that are not archives at all.

:func:`run_case` loads one file in a **forked child** (then predicts once on a sample of the
right shape when it loads) under a time limit and an address-space limit, and reports how it
ended: ``loaded``, ``refused`` (a learnflux error), ``escape`` (any other exception, or a
learnflux error wrapping one the loader did not foresee), ``hang`` (killed at the time limit),
``crash`` (another signal), with its time and its peak resident memory over the child's own at
its start (a forked child starts with the parent's pages).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import resource
import signal
import struct
import sys
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np

HEADER = "__learnflux__"
#: a pickle payload that would create this file if it were ever unpickled
MARKER_NAME = "PWNED-by-a-pickle"


# ---------------------------------------------------------------------------- seeds
def seed_models() -> dict[str, tuple[Any, tuple]]:
    """The models mutated, with the per-sample input shape used to predict after a load."""
    import learnflux as lf

    lf.seed(0)
    cnn = lf.Sequential(
        lf.Input((1, 8, 8)),
        lf.Conv2d(1, 4, 3, padding=1),
        lf.BatchNorm2d(4),
        lf.ReLU(),
        lf.MaxPool2d(2),
        lf.Conv2d(4, 6, 3, stride=2, padding=1, bias=False),
        lf.GlobalAvgPool2d(),
        lf.Dropout(0.2),
        lf.Linear(6, 10),
    )
    mlp = lf.Sequential(
        lf.Input(12), lf.Linear(12, 16), lf.LayerNorm(16), lf.GELU(), lf.Linear(16, 3), lf.Softmax()
    )
    x = lf.Input(5)
    h = lf.Linear(5, 5)(x)
    y = lf.Linear(5, 2)(lf.Add()([x, h]))
    graph = lf.Model(x, y)
    exact = lf.Sequential(lf.Input(3), lf.Linear(3, 2), lf.ReLU(), lf.Linear(2, 1)).astype("exact")
    return {"cnn": (cnn, (1, 8, 8)), "mlp": (mlp, (12,)), "graph": (graph, (5,)), "exact": (exact, (3,))}


def seed_files(folder: Path) -> dict[str, tuple[bytes, tuple]]:
    """Save the seed models into ``folder``; return ``name -> (file bytes, sample shape)``."""
    import learnflux as lf

    out = {}
    for name, (model, shape) in seed_models().items():
        path = folder / f"{name}.lf"
        lf.save(model, path)
        out[name] = (path.read_bytes(), shape)
    return out


# ---------------------------------------------------------------------------- archives
def members_of(data: bytes) -> dict[str, bytes]:
    """``{member name: bytes}`` of a (valid) archive, in order."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {info.filename: z.read(info) for info in z.infolist()}


def zip_of(members: list[tuple[str, bytes]], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are on purpose
        with zipfile.ZipFile(buf, "w", method) as z:
            for name, blob in members:
                z.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), blob, compress_type=method)
    return buf.getvalue()


def npy(arr: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def npy_raw(header: str, data: bytes, version: int = 1) -> bytes:
    """A ``.npy`` member with a hand-written header (which may lie)."""
    text = header.encode("latin-1")
    if version == 1:
        pad = (64 - (10 + len(text) + 1) % 64) % 64
        text = text + b" " * pad + b"\n"
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data
    pad = (64 - (12 + len(text) + 1) % 64) % 64
    text = text + b" " * pad + b"\n"
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(text)) + text + data


class _Evil:
    """Unpickling this would create the marker file: a mutant holding it must never run it."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def __reduce__(self) -> Any:
        return (open, (os.path.join(self.folder, MARKER_NAME), "w"))


# ---------------------------------------------------------------------------- JSON mutations
INTERESTING = [
    0,
    -1,
    1,
    2,
    3,
    7,
    2**31,
    2**63,
    -(2**63),
    10**30,
    1e11,
    1e300,
    -1e300,
    0.5,
    -0.0,
    1.5,
    "",
    "x",
    "same",
    "1/0",
    "1e9999999",
    None,
    True,
    False,
    [],
    {},
    [[]],
    [1],
    [0, 0],
    [1, 2, 3],
    [-1, -1],
    [2**40, 2**40],
    {"class": "ReLU", "config": {}},
    "Activation",
    "Layer",
    "_BatchNorm",
    "_Pool2d",
    "Model",
    "Sequential",
    "Input",
    "Linear",
    "Conv2d",
    "Dropout",
    "NoSuchLayer",
]


def _nodes(value: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _nodes(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _nodes(v, (*path, i))


def _get(value: Any, path: tuple) -> Any:
    for p in path:
        value = value[p]
    return value


def _set(root: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    _get(root, path[:-1])[path[-1]] = new
    return root


def mutate_header(header: dict, rng: random.Random) -> Any:
    """One structural change of a header (a copy)."""
    h = json.loads(json.dumps(header))
    paths = list(_nodes(h))
    path = rng.choice(paths)
    op = rng.randrange(9)
    target = _get(h, path)
    if op <= 2:  # replace a value
        return _set(h, path, json.loads(json.dumps(rng.choice(INTERESTING))))
    if op == 3 and isinstance(target, dict) and target:  # delete a key
        del target[rng.choice(list(target))]
        return h
    if op == 4 and isinstance(target, dict):  # add an unknown key
        target[rng.choice(["rng", "extra", "self", "kind", "__class__"])] = rng.choice(INTERESTING[:20])
        return h
    if op == 5 and isinstance(target, list) and target:  # repeat an element
        target.extend([target[-1]] * rng.choice([1, 5, 100]))
        return h
    if op == 6 and isinstance(target, list) and target:  # drop an element
        del target[rng.randrange(len(target))]
        return h
    if op == 7:  # a numeric value off by a little
        if isinstance(target, int) and not isinstance(target, bool):
            return _set(h, path, target + rng.choice([-2, -1, 1, 2, 100]))
    # swap the class of some layer
    specs = [p for p in paths if p and p[-1] == "class"]
    if specs:
        _set(h, rng.choice(specs), rng.choice([v for v in INTERESTING if isinstance(v, str)]))
    return h


def header_of(data: bytes) -> dict:
    raw = np.load(io.BytesIO(members_of(data)[HEADER + ".npy"]), allow_pickle=False)
    return json.loads(raw.tobytes())


def with_header_bytes(data: bytes, raw: bytes, method: int = zipfile.ZIP_STORED) -> bytes:
    members = members_of(data)
    members[HEADER + ".npy"] = npy(np.frombuffer(raw, dtype=np.uint8))
    return zip_of(list(members.items()), method)


def with_member(data: bytes, name: str, blob: Optional[bytes]) -> bytes:
    members = members_of(data)
    if blob is None:
        members.pop(name, None)
    else:
        members[name] = blob
    return zip_of(list(members.items()))


_WHITESPACE: dict[tuple[int, int], bytes] = {}


def _whitespace_header(data: bytes, spaces: int) -> bytes:
    """The archive with its header preceded by ``spaces`` spaces, deflated (streamed: the
    spaces are never all in memory; cached per seed file and size)."""
    key = (hash(data), spaces)
    if key not in _WHITESPACE:
        text = json.dumps(header_of(data)).encode()
        n = spaces + len(text)
        head = npy_raw(f"{{'descr': '|u1', 'fortran_order': False, 'shape': ({n},), }}", b"")
        members = members_of(data)
        del members[HEADER + ".npy"]
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for name, blob in members.items():
                z.writestr(name, blob)
            with z.open(HEADER + ".npy", "w", force_zip64=True) as f:
                f.write(head)
                block = b" " * (8 << 20)
                left = spaces
                while left > 0:
                    f.write(block[: min(left, len(block))])
                    left -= len(block)
                f.write(text)
        _WHITESPACE[key] = buf.getvalue()
    return _WHITESPACE[key]


# ---------------------------------------------------------------------------- the mutants
def mutants(
    seeds: dict[str, tuple[bytes, tuple]], count: int, seed: int, folder: str, big: bool = False
) -> Iterator[tuple[str, str, bytes]]:
    """``count`` mutants ``(seed name, operator, file bytes)``, reproducible from ``seed``.
    ``big`` adds the large cases (100,000 members, a 1.5 GiB whitespace header compressed...)."""
    rng = random.Random(seed)
    names = sorted(seeds)
    ops = _operators(big)
    for i in range(count):
        name = names[i % len(names)]
        data, _ = seeds[name]
        op_name, op = ops[rng.randrange(len(ops))]
        yield name, op_name, op(data, rng, folder)


def _operators(big: bool) -> list[tuple[str, Callable[[bytes, random.Random, str], bytes]]]:
    def truncate(d: bytes, r: random.Random, f: str) -> bytes:
        return d[: r.randrange(len(d))]

    def flip(d: bytes, r: random.Random, f: str) -> bytes:
        b = bytearray(d)
        for _ in range(r.choice([1, 1, 2, 4, 16])):
            b[r.randrange(len(b))] ^= 1 << r.randrange(8)
        return bytes(b)

    def overwrite(d: bytes, r: random.Random, f: str) -> bytes:
        b = bytearray(d)
        at, n = r.randrange(len(b)), r.choice([1, 4, 8, 64])
        fill = r.choice([b"\x00", b"\xff", bytes([r.randrange(256)])])
        b[at : at + n] = fill * len(b[at : at + n])
        return bytes(b)

    def splice(d: bytes, r: random.Random, f: str) -> bytes:
        a, c = sorted(r.randrange(len(d)) for _ in range(2))
        return d[:a] + d[c:] if r.random() < 0.5 else d[:a] + d[a:c] * 2 + d[c:]

    def junk(d: bytes, r: random.Random, f: str) -> bytes:
        noise = bytes(r.randrange(256) for _ in range(r.choice([1, 100, 5000])))
        return noise + d if r.random() < 0.5 else d + noise

    def json_mutation(d: bytes, r: random.Random, f: str) -> bytes:
        h = header_of(d)
        for _ in range(r.choice([1, 1, 2, 3])):
            h = mutate_header(h, r)
        return with_header_bytes(d, json.dumps(h).encode())

    def json_text(d: bytes, r: random.Random, f: str) -> bytes:
        text = json.dumps(header_of(d))
        choice = r.randrange(8)
        if choice == 0:
            raw = ("[" * 100_000 + "]" * 100_000).encode()
        elif choice == 1:
            raw = text.replace("0.1", "NaN", 1).replace("[1, 8, 8]", "[1e999, 8, 8]").encode()
        elif choice == 2:
            raw = text.replace('"version": 1', '"version": ' + "9" * 50_000).encode()
        elif choice == 3:
            raw = (text[:-1] + ', "format": "learnflux"}').encode()  # a repeated key
        elif choice == 4:
            raw = text.encode()[: r.randrange(len(text))]
        elif choice == 5:
            raw = b"\xff\xfe" + text.encode("utf-16-le")
        elif choice == 6:
            raw = ("[" + "{}," * 400_000 + "{}]").encode()
        else:
            return _whitespace_header(d, (1536 << 20) if big else (12 << 20))
        return with_header_bytes(d, raw)

    def many_layers(d: bytes, r: random.Random, f: str) -> bytes:
        h = header_of(d)
        n = r.choice([20_000, 100_001] if big else [2_000, 5_000])
        layers = [{"class": "ReLU", "config": {}}] * n
        if r.random() < 0.5:
            h["model"] = {
                "class": "Sequential",
                "config": {"layers": [{"class": "Input", "config": {"shape": [3]}}, *layers]},
            }
        else:
            nodes = [{"layer": {"class": "ReLU", "config": {}}, "inbound": [i - 1]} for i in range(n)]
            h["model"] = {"class": "Model", "config": {"nodes": nodes}}
        members = [(HEADER + ".npy", npy(np.frombuffer(json.dumps(h).encode(), dtype=np.uint8)))]
        return zip_of(members)

    def deep_model(d: bytes, r: random.Random, f: str) -> bytes:
        n = r.choice([40, 300, 900])
        spec = (
            '{"class": "Sequential", "config": {"layers": [' * n
            + '{"class": "ReLU", "config": {}}'
            + "]}}" * n
        )
        text = '{"format": "learnflux", "version": 1, "dtype": "float32", "model": ' + spec + "}"
        return zip_of([(HEADER + ".npy", npy(np.frombuffer(text.encode(), dtype=np.uint8)))])

    def sizes(d: bytes, r: random.Random, f: str) -> bytes:
        h = header_of(d)
        keys = [
            p
            for p in _nodes(h)
            if p
            and p[-1]
            in (
                "in_features",
                "out_features",
                "in_channels",
                "out_channels",
                "num_features",
                "kernel_size",
                "normalized_shape",
                "shape",
                "padding",
                "dilation",
                "stride",
                "groups",
                "p",
                "eps",
                "momentum",
            )
        ]
        if keys:
            value = r.choice([10**11, 1e11, 2**31 - 1, 2**20, 65536, 1000, 0, -3, [2**20, 2**20], "1e11"])
            _set(h, r.choice(keys), value)
        return with_header_bytes(d, json.dumps(h).encode())

    def graph_refs(d: bytes, r: random.Random, f: str) -> bytes:
        h = header_of(d)
        inbound = [p for p in _nodes(h) if p and p[-1] == "inbound"]
        if not inbound:
            return json_mutation(d, r, f)
        value = r.choice([[5], [-2], [0, 0, 0], [], [100], [-1, -3], ["0"], [1.0], [2**40]])
        _set(h, r.choice(inbound), value)
        return with_header_bytes(d, json.dumps(h).encode())

    def array_dtype(d: bytes, r: random.Random, f: str) -> bytes:
        members = members_of(d)
        name = r.choice([n for n in members if n != HEADER + ".npy"])
        arr = np.load(io.BytesIO(members[name]), allow_pickle=False)
        kind = r.randrange(12)
        shape = arr.shape
        if kind == 0:
            other = np.float64 if arr.dtype != np.float64 else np.float32
            new = arr.astype(other) if arr.dtype.kind in "fiub" else np.zeros(shape, dtype=other)
        elif kind == 1:
            new = np.zeros(shape, dtype="U8")
        elif kind == 2:
            new = np.zeros(shape, dtype="S4")
        elif kind == 3:
            new = np.zeros(shape, dtype="datetime64[s]")
        elif kind == 4:
            new = np.zeros(shape, dtype=np.complex64)
        elif kind == 5:
            new = np.zeros(shape, dtype=bool)
        elif kind == 6:
            new = np.zeros(shape, dtype=np.int64) - 5
        elif kind == 7:
            new = np.zeros(shape, dtype=[("a", "<f4"), ("b", "<i4")])
        elif kind == 8:
            obj = np.empty(1, dtype=object)
            obj[0] = _Evil(f)
            members[name] = npy(obj, allow_pickle=True)
            return zip_of(list(members.items()))
        elif kind == 9:
            new = arr.astype(arr.dtype.newbyteorder(">")) if arr.dtype.kind in "fiu" else arr
        elif kind == 10:
            new = np.asfortranarray(arr.T).T if arr.ndim > 1 else arr
        else:
            new = np.full(shape, "1e9999999", dtype="U16") if arr.dtype.kind == "U" else arr.astype("<f2")
        members[name] = npy(np.asarray(new))
        return zip_of(list(members.items()))

    def array_values(d: bytes, r: random.Random, f: str) -> bytes:
        members = members_of(d)
        name = r.choice([n for n in members if n != HEADER + ".npy"])
        arr = np.load(io.BytesIO(members[name]), allow_pickle=False).copy()
        if arr.size == 0:
            return d
        flat = arr.reshape(-1)
        if arr.dtype.kind == "f":
            flat[r.randrange(flat.size)] = r.choice([np.nan, np.inf, -np.inf, -1.0, 1e38])
        elif arr.dtype.kind == "U":
            flat[r.randrange(flat.size)] = r.choice(["1/0", "abc", "", "1e5", " 1/2", "9" * 10, "-0/1"])
        elif arr.dtype.kind in "iu":
            flat[r.randrange(flat.size)] = r.choice([-1, 2**62])
        members[name] = npy(arr)
        return zip_of(list(members.items()))

    def array_shape(d: bytes, r: random.Random, f: str) -> bytes:
        members = members_of(d)
        name = r.choice([n for n in members if n != HEADER + ".npy"])
        arr = np.load(io.BytesIO(members[name]), allow_pickle=False)
        choice = r.randrange(6)
        if choice == 0:
            new = arr.reshape(-1)
        elif choice == 1:
            new = arr[None]
        elif choice == 2:
            new = np.zeros((0,), dtype=arr.dtype)
        elif choice == 3:
            new = np.zeros((), dtype=arr.dtype)
        elif choice == 4:
            new = np.concatenate([arr.reshape(-1), arr.reshape(-1)])
        else:
            new = arr.T
        members[name] = npy(np.ascontiguousarray(new))
        return zip_of(list(members.items()))

    def npy_header_lie(d: bytes, r: random.Random, f: str) -> bytes:
        members = members_of(d)
        name = r.choice(list(members))
        arr = np.load(io.BytesIO(members[name]), allow_pickle=False)
        data = arr.tobytes()
        descr = arr.dtype.str
        choice = r.randrange(8)
        if choice == 0:
            header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': (100000, 100000), }}"
        elif choice == 1:
            header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({2**62},), }}"
        elif choice == 2:
            header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
        elif choice == 3:
            evil = "'x': __import__('os')"
            header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {arr.shape}, {evil}, }}"
        elif choice == 4:
            header = "{" + "'shape': (1,), " * 2000 + "}"
        elif choice == 5:
            header = f"{{'descr': '{descr}', 'fortran_order': 1, 'shape': {arr.shape}, }}"
        elif choice == 6:
            header = f"{{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': {arr.shape}, }}"
        else:
            header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {(1,) * 40}, }}"
        members[name] = npy_raw(header, data, version=r.choice([1, 2, 3]))
        return zip_of(list(members.items()))

    def zip_tricks(d: bytes, r: random.Random, f: str) -> bytes:
        members = list(members_of(d).items())
        choice = r.randrange(10)
        if choice == 0:  # a member twice (the second wins in zipfile's table)
            k = r.randrange(len(members))
            return zip_of(members + [members[k]])
        if choice == 1:  # many extra members
            n = 100_000 if big and r.random() < 0.5 else r.choice([10, 2000])
            return zip_of(members + [(f"extra{i}.npy", npy(np.zeros(1, np.float32))) for i in range(n)])
        if choice == 2:  # a member missing
            del members[r.randrange(len(members))]
            return zip_of(members)
        if choice == 3:  # deflated (np.savez_compressed), then a byte of it flipped
            z = bytearray(zip_of(members, zipfile.ZIP_DEFLATED))
            if r.random() < 0.5:
                z[r.randrange(len(z) // 2)] ^= 0xFF
            return bytes(z)
        if choice == 4:  # a zip bomb inside an array member
            n = (400 << 20) if big else (8 << 20)
            bomb = npy_raw(f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({n // 4},), }}", bytes(n))
            k = r.randrange(len(members))
            members[k] = (members[k][0], bomb)
            return zip_of(members, zipfile.ZIP_DEFLATED)
        if choice == 5:  # the encrypted flag
            z = bytearray(zip_of(members))
            at = z.find(b"PK\x01\x02")
            z[at + 8] |= 1
            return bytes(z)
        if choice == 6:  # a member declaring a huge uncompressed size
            z = bytearray(zip_of(members))
            at = z.find(b"PK\x01\x02")
            z[at + 24 : at + 28] = struct.pack("<I", 0xFFFFFFF0)
            return bytes(z)
        if choice == 7:  # two central entries pointing at the same data (overlap)
            z = bytearray(zip_of(members + [("dup.npy", members[0][1])]))
            first = z.find(b"PK\x01\x02")
            last = z.rfind(b"PK\x01\x02")
            z[last + 42 : last + 46] = z[first + 42 : first + 46]
            return bytes(z)
        if choice == 8:  # a compression method zipfile knows but learnflux does not read
            return zip_of(members, zipfile.ZIP_BZIP2)
        z = bytearray(zip_of(members))  # the central directory's offset or size off
        end = z.rfind(b"PK\x05\x06")
        field = r.choice([12, 16])
        z[end + field : end + field + 4] = struct.pack("<I", r.choice([0, 0xFFFFFFFF, len(z) * 2]))
        return bytes(z)

    def not_an_archive(d: bytes, r: random.Random, f: str) -> bytes:
        choice = r.randrange(6)
        if choice == 0:
            return b""
        if choice == 1:
            return bytes(r.randrange(256) for _ in range(r.choice([10, 1000])))
        if choice == 2:
            return pickle.dumps(_Evil(f))
        if choice == 3:
            return npy(np.zeros(3, np.float32))
        if choice == 4:
            return b"PK\x05\x06" + b"\x00" * 18
        return b"PK\x03\x04" + d[4:]

    ops = [
        ("truncate", truncate),
        ("flip", flip),
        ("overwrite", overwrite),
        ("splice", splice),
        ("junk", junk),
        ("json", json_mutation),
        ("json", json_mutation),
        ("json", json_mutation),
        ("json-text", json_text),
        ("sizes", sizes),
        ("sizes", sizes),
        ("graph-refs", graph_refs),
        ("array-dtype", array_dtype),
        ("array-values", array_values),
        ("array-shape", array_shape),
        ("npy-header", npy_header_lie),
        ("zip", zip_tricks),
        ("zip", zip_tricks),
        ("not-archive", not_an_archive),
        ("many-layers", many_layers),
        ("deep-model", deep_model),
    ]
    return ops


# ---------------------------------------------------------------------------- running one case
@dataclass
class Outcome:
    """How loading one mutant ended (``kind``: loaded / refused / escape / hang / crash)."""

    op: str
    kind: str
    error: str
    message: str
    seconds: float
    rss_mib: float


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _vm_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def run_case(path: str, shape: tuple, op: str, time_cap: float, mem_cap: int) -> Outcome:
    """Load ``path`` (then predict once) in a forked child limited to ``time_cap`` seconds and
    ``mem_cap`` bytes of address space over the parent's."""
    read_fd, write_fd = os.pipe()
    base_rss = _rss_bytes()
    base_vm = _vm_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork in a process with threads
        pid = os.fork()
    if pid == 0:  # the child
        os.close(read_fd)
        code = 0
        start_rss = _rss_bytes()  # fork shares the parent's pages: the child's own baseline
        try:
            resource.setrlimit(resource.RLIMIT_AS, (base_vm + mem_cap, base_vm + mem_cap))
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.setitimer(signal.ITIMER_REAL, time_cap)
            report = _child(path, shape)
        except BaseException as exc:  # pragma: no cover - the child reports everything
            report = {"kind": "escape", "error": type(exc).__name__, "message": str(exc)[:300]}
        report["start_rss"] = start_rss
        try:
            os.write(write_fd, json.dumps(report).encode()[:60000])
        finally:
            os._exit(code)
    os.close(write_fd)
    t0 = time.perf_counter()
    chunks = []
    while True:
        block = os.read(read_fd, 65536)
        if not block:
            break
        chunks.append(block)
    os.close(read_fd)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - t0
    try:
        report = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        report = {"kind": "escape", "error": "?", "message": "unreadable report"}
    baseline = report.get("start_rss", base_rss)
    rss = max(0.0, usage.ru_maxrss * 1024 - baseline) / (1 << 20)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        kind = "hang" if sig == signal.SIGALRM else "crash"
        return Outcome(op, kind, signal.Signals(sig).name, "", seconds, rss)
    return Outcome(
        op, report.get("kind", "escape"), report.get("error", ""), report.get("message", ""), seconds, rss
    )


def _child(path: str, shape: tuple) -> dict:
    import learnflux as lf
    from learnflux.errors import LearnfluxError

    def describe(stage: str, exc: BaseException) -> dict:
        unexpected = getattr(exc, "unexpected", None)
        if isinstance(exc, LearnfluxError) and not unexpected:
            return {
                "kind": "refused" if stage == "load" else "loaded",
                "error": type(exc).__name__,
                "message": f"{stage}: {exc}"[:300],
            }
        return {
            "kind": "escape",
            "error": unexpected or type(exc).__name__,
            "message": f"{stage}: {exc}"[:300],
        }

    try:
        model = lf.load(path)
    except FileNotFoundError as exc:
        return {"kind": "escape", "error": "FileNotFoundError", "message": str(exc)}
    except BaseException as exc:
        return describe("load", exc)
    try:
        x = np.random.default_rng(0).random((2, *shape)).astype(np.float32)
        model.predict(x)
    except BaseException as exc:
        return describe("predict", exc)
    return {"kind": "loaded", "error": "", "message": ""}


# ---------------------------------------------------------------------------- a whole run
@dataclass
class Summary:
    """Figures of a fuzz run."""

    mutants: int
    kinds: dict[str, int]
    by_op: dict[str, dict[str, int]]
    escapes: list[Outcome]
    max_rss_mib: float
    max_seconds: float
    slowest: Optional[Outcome]
    hungriest: Optional[Outcome]
    pickle_ran: bool


def fuzz(
    folder: Path,
    count: int,
    seed: int,
    time_cap: float = 10.0,
    mem_cap: int = 768 << 20,
    big: bool = False,
    progress: Optional[Callable[[int, Outcome], None]] = None,
) -> Summary:
    """Run ``count`` mutants of the seed models through :func:`run_case`."""
    folder.mkdir(parents=True, exist_ok=True)
    seeds = seed_files(folder)
    kinds: dict[str, int] = {}
    by_op: dict[str, dict[str, int]] = {}
    escapes: list[Outcome] = []
    slowest = hungriest = None
    case = folder / "mutant.lf"
    for i, (name, op, data) in enumerate(mutants(seeds, count, seed, str(folder), big)):
        case.write_bytes(data)
        out = run_case(str(case), seeds[name][1], op, time_cap, mem_cap)
        kinds[out.kind] = kinds.get(out.kind, 0) + 1
        by_op.setdefault(op, {})
        by_op[op][out.kind] = by_op[op].get(out.kind, 0) + 1
        if out.kind in ("escape", "hang", "crash"):
            escapes.append(out)
        if slowest is None or out.seconds > slowest.seconds:
            slowest = out
        if hungriest is None or out.rss_mib > hungriest.rss_mib:
            hungriest = out
        if progress is not None:
            progress(i, out)
    return Summary(
        mutants=count,
        kinds=kinds,
        by_op=by_op,
        escapes=escapes,
        max_rss_mib=hungriest.rss_mib if hungriest else 0.0,
        max_seconds=slowest.seconds if slowest else 0.0,
        slowest=slowest,
        hungriest=hungriest,
        pickle_ran=(folder / MARKER_NAME).exists(),
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run tools/fuzz_load.py")
