"""Data for training: batching, splits, standardisation, datasets, a downloader.

- :class:`ArrayLoader`: seeded, reproducible mini-batches ``(xb, yb)`` from NumPy arrays.
- :func:`train_val_split`, :func:`train_val_test_split`: seeded (optionally stratified) splits.
- :class:`Standardizer`: per-feature mean / std, saveable as JSON.
- :func:`load_digits`: the handwritten digits (1,797 images 8×8), embedded: no download.
- :func:`load_mnist`: MNIST / Fashion-MNIST from their IDX files (:func:`read_idx`), with
  :func:`download` (resumes, verifies SHA-256, renames atomically).
- :func:`load_csv`: tabular data.
- :func:`load_text`: a novel (Pride and Prejudice), embedded; :class:`CharVocabulary` and
  :func:`text_dataset` (contiguous split, windows) for character-level language models
  (:mod:`learnflux.data.text`).
- :func:`load_dataset`, :func:`split_dataset`: a dataset by name, split and standardised as
  ``learnflux train`` does with the ``[data]`` table of its config.
"""

from .csvdata import load_csv
from .datasets import MNIST_FILES, MNIST_MIRRORS, MNIST_SHA256, load_digits, load_mnist
from .download import download, sha256_file
from .idx import read_idx, write_idx
from .loader import ArrayLoader
from .prepare import load_dataset, split_dataset
from .split import train_val_split, train_val_test_split
from .text import CharVocabulary, load_text, text_dataset
from .transforms import Standardizer

__all__ = [
    "ArrayLoader",
    "CharVocabulary",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "MNIST_SHA256",
    "Standardizer",
    "download",
    "load_csv",
    "load_dataset",
    "load_digits",
    "load_mnist",
    "load_text",
    "read_idx",
    "sha256_file",
    "split_dataset",
    "text_dataset",
    "train_val_split",
    "train_val_test_split",
    "write_idx",
]
