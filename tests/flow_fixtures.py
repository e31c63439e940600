"""Shared set-ups of the learning-flow tests: a run folder holding the default digits CNN (its
config.toml beside model.lf, as `learnflux train` leaves it), without training it."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

import learnflux as lf
from learnflux.config import DEFAULT_CONFIG, build_model, default_config, load_data


def digits_run(folder: Path) -> Path:
    """``folder/model.lf`` + ``folder/config.toml``: the default CNN, fresh weights (seed 0)."""
    cfg = default_config()
    ds = load_data(cfg)
    model = build_model(cfg, ds.sample_shape)
    folder.mkdir(parents=True, exist_ok=True)
    lf.save(model, folder / "model.lf")
    (folder / "config.toml").write_text(DEFAULT_CONFIG, encoding="utf-8")
    return folder / "model.lf"


def page_payload(html: str) -> dict[str, Any]:
    """The JSON data a learning-flow page carries."""
    m = re.search(r'<script id="trace-data" type="application/json">(.*?)</script>', html, re.S)
    assert m, "the page has no trace-data element"
    return json.loads(m.group(1).replace("<\\/", "</"))


def page_tensor(payload: dict[str, Any], tid: int) -> np.ndarray:
    """Tensor ``tid`` of a page, decoded (exact ones as an array of strings)."""
    item = payload["tensors"][tid]
    if "exact" in item:
        return np.array(item["exact"], dtype=object).reshape(item["shape"])
    kind = "f32" if "f32" in item else "f64"
    data = np.frombuffer(base64.b64decode(item[kind]), dtype="<f4" if kind == "f32" else "<f8")
    return data.reshape(item["shape"])
