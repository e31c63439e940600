"""Datasets: the embedded handwritten digits, and MNIST / Fashion-MNIST from their IDX files."""

from __future__ import annotations

import gzip
import io
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import ConfigError, DataError, DownloadError
from .download import download as _download
from .idx import read_idx

PathLike = Union[str, "os.PathLike[str]"]

# ----------------------------------------------------------------------------------------------
# The handwritten digits (UCI via scikit-learn), embedded in the package: see files/README.md.


@lru_cache(maxsize=1)
def _digits_table() -> np.ndarray:
    raw = resources.files("learnflux.data").joinpath("files", "digits.csv.gz").read_bytes()
    text = gzip.decompress(raw)
    table = np.loadtxt(io.BytesIO(text), delimiter=",", dtype=np.uint8, ndmin=2)
    if table.shape != (1797, 65):
        raise DataError(
            f"the embedded digits file is damaged: table of shape {table.shape}, expected (1797, 65)"
        )
    table.setflags(write=False)
    return table


def load_digits(images: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """The handwritten digits: 1,797 grey 8×8 images of the digits 0-9 (no download needed).

    The same data as scikit-learn's ``load_digits`` (the UCI "Optical Recognition of Handwritten
    Digits" test set, CC BY 4.0), embedded in learnflux. Pixel counts 0..16 are scaled to [0, 1]
    by dividing by 16 (exact in float32).

    Args:
        images: ``True`` gives ``x`` of shape ``(1797, 1, 8, 8)`` (channels first, row 0 at the
            top, ready for ``Conv2d``); ``False`` gives ``(1797, 64)`` (rows of pixels, for an MLP).

    Returns:
        ``(x, y)``: ``x`` float32 in [0, 1], ``y`` int64 labels 0..9.
    """
    table = _digits_table()
    x = np.divide(table[:, :64], np.float32(16), dtype=np.float32)
    y = table[:, 64].astype(np.int64)
    return (x.reshape(-1, 1, 8, 8) if images else x), y


# ----------------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST

MNIST_FILES: Dict[str, Tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# SHA-256 of the official gzip files, as listed by tensorflow-datasets' url_checksums
# (mnist.txt, fashion_mnist.txt) and confirmed by other independent sources.
MNIST_SHA256: Dict[str, Dict[str, Optional[str]]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}

# Mirrors tried in order (the original yann.lecun.com page no longer serves the files reliably).
MNIST_MIRRORS: Dict[str, Tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}

# Sub-folders also searched under root (torchvision's layout).
_TORCHVISION_DIRS = {"mnist": "MNIST/raw", "fashion": "FashionMNIST/raw"}


def _find(root: Path, kind: str, name: str) -> Optional[Path]:
    for folder in (root, root / _TORCHVISION_DIRS[kind]):
        for candidate in (folder / name, folder / name[: -len(".gz")]):
            if candidate.is_file():
                return candidate
    return None


def _fetch(name: str, root: Path, bases: Sequence[str], sha256: Optional[str]) -> Path:
    errors: List[str] = []
    for base in bases:
        url = base if base.endswith("/") else base + "/"
        try:
            return _download(url + name, root / name, sha256=sha256)
        except DownloadError as e:
            errors.append(str(e))
    raise DownloadError(f"could not download {name}:\n  " + "\n  ".join(errors))


def load_mnist(
    root: PathLike,
    split: str = "train",
    kind: str = "mnist",
    download: bool = False,
    base_url: Optional[str] = None,
    checksums: Optional[Mapping[str, Optional[str]]] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """MNIST or Fashion-MNIST from the standard IDX files in ``root``.

    Looks for ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz`` (``split="train"``)
    or ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz`` (``split="test"``), gzipped or
    not (the same names without ``.gz``), in ``root`` or in torchvision's ``root/MNIST/raw``
    (``FashionMNIST/raw``). Missing files are downloaded when ``download=True`` (from
    ``base_url``, or the known mirrors in turn) and their SHA-256 is checked against the official
    checksums (``MNIST_SHA256``) or against ``checksums`` (file name → hex digest, ``None`` to
    skip), e.g. for a private mirror serving other MNIST-format files.

    Args:
        root: the folder holding (or receiving) the files.
        split: ``"train"`` (60,000 samples) or ``"test"`` (10,000).
        kind: ``"mnist"`` (digits) or ``"fashion"`` (Zalando's Fashion-MNIST, 10 clothing classes).
        download: download the missing files.
        base_url: the folder URL to download from (default: the official mirrors).
        checksums: expected SHA-256 per file name, replacing the official table.

    Returns:
        ``(x, y)``: ``x`` float32 ``(n, 1, 28, 28)`` scaled to [0, 1] (bytes / 255), ``y`` int64.
    """
    if split not in MNIST_FILES:
        raise ConfigError(f"load_mnist: split must be 'train' or 'test', got {split!r}")
    if kind not in MNIST_SHA256:
        raise ConfigError(f"load_mnist: kind must be 'mnist' or 'fashion', got {kind!r}")
    root = Path(root)
    table = MNIST_SHA256[kind] if checksums is None else dict(checksums)
    paths = []
    for name in MNIST_FILES[split]:
        found = _find(root, kind, name)
        if found is None:
            if not download:
                raise DataError(
                    f"load_mnist: {name} (or {name[:-3]}) not found in {root}; "
                    f"pass download=True to fetch it, or put the file there"
                )
            bases = (base_url,) if base_url else MNIST_MIRRORS[kind]
            root.mkdir(parents=True, exist_ok=True)
            found = _fetch(name, root, bases, table.get(name))
        paths.append(found)
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{paths[0]}: expected uint8 images of shape (n, rows, cols), got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(
            f"{paths[1]}: expected {len(images)} labels (one per image of {paths[0].name}), "
            f"got shape {labels.shape}"
        )
    x = np.divide(images, np.float32(255), dtype=np.float32)
    return x.reshape(len(images), 1, *images.shape[1:]), labels.astype(np.int64)
