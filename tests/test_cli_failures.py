"""The command line never shows a traceback for a user's mistake: a message naming the file and
what to do, and an exit code saying what kind of failure it was (documented in ``--help``);
``--debug`` shows the traceback. The probes of issue 11, one by one."""

from __future__ import annotations

import errno
import pathlib
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest

import learnflux as lf
from learnflux.cli import build_parser, main
from learnflux.cli.failures import EXIT_DATA, EXIT_FILES, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE

CONFIG = """\
[data]
limit = 120
[model]
[[model.layers]]
type = "Flatten"
[[model.layers]]
type = "Linear"
out_features = 10
[training]
epochs = 1
"""


def _run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.err.strip()


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    (folder / "c.toml").write_text(CONFIG)
    assert (
        main(
            [
                "train",
                "--config",
                str(folder / "c.toml"),
                "--out",
                str(folder / "run"),
                "--quiet",
                "--no-plot",
            ]
        )
        == 0
    )
    return folder / "run"


def test_help_documents_the_exit_codes():
    text = build_parser().format_help()
    assert "exit codes:" in text and "130" in text and "--debug" in text


def test_non_utf8_toml(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe[model]\n")
    code, err = _run(capsys, "train", "--config", str(bad))
    assert code == EXIT_USAGE
    assert f"{bad}: not UTF-8 text (byte 0xff at offset 0)" in err


def test_a_config_with_only_a_model_table_works_everywhere(tmp_path, capsys, run_folder):
    assert main(["summary", str(run_folder.parent / "c.toml")]) == 0
    assert main(["evaluate", str(run_folder / "model.lf")]) == 0
    assert main(["predict", str(run_folder / "model.lf"), "--sample", "0"]) == 0


def test_print_config_of_a_missing_file(tmp_path, capsys):
    code, err = _run(capsys, "train", "--print-config", "--config", str(tmp_path / "nope.toml"))
    assert code == EXIT_USAGE and "nope.toml: cannot read the config file (No such file" in err


@pytest.mark.parametrize("command", ["predict", "evaluate", "summary"])
def test_a_corrupt_model_file(tmp_path, capsys, run_folder, command):
    bad = tmp_path / "model.lf"
    bad.write_bytes((run_folder / "model.lf").read_bytes()[:700])
    (tmp_path / "config.toml").write_text((run_folder / "config.toml").read_text())
    argv = [command, str(bad)] + (["--sample", "0"] if command == "predict" else [])
    code, err = _run(capsys, *argv)
    assert code == EXIT_DATA and str(bad) in err


def test_out_under_a_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "c.toml").write_text(CONFIG)
    code, err = _run(
        capsys, "train", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "afile" / "run")
    )
    assert code in (EXIT_FILES, EXIT_USAGE), err
    assert "afile" in err and ("not a folder" in err or "is a file" in err)


def test_out_in_a_read_only_folder(tmp_path, capsys, monkeypatch):
    (tmp_path / "c.toml").write_text(CONFIG)
    target = tmp_path / "ro" / "run"
    real_mkdir = pathlib.Path.mkdir

    def mkdir(self, *args, **kwargs):  # root ignores permissions: simulate the refusal
        if str(self).startswith(str(tmp_path / "ro")):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    code, err = _run(capsys, "train", "--config", str(tmp_path / "c.toml"), "--out", str(target))
    assert code == EXIT_FILES
    assert f"{target}: Permission denied; check the permissions, or choose another location" in err


def _png_header(width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress((b"\x00" + b"\x00" * width) * 4)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "size", [(20_000, 20_000), (9_000, 8_000)], ids=["pillow-bomb", "over-64-megapixels"]
)
def test_a_huge_image_is_refused_before_decoding(tmp_path, capsys, run_folder, size):
    png = tmp_path / "huge.png"
    png.write_bytes(_png_header(*size))
    t0 = time.perf_counter()
    code, err = _run(capsys, "predict", str(run_folder / "model.lf"), str(png))
    assert time.perf_counter() - t0 < 5
    assert code == EXIT_DATA and "megapixels: shrink or crop it first" in err


def test_a_large_image_is_shrunk_before_float_conversion(tmp_path, run_folder):
    from PIL import Image

    from learnflux.cli.predict import load_image

    img = np.zeros((800, 640), dtype=np.uint8)
    img[200:600, 300:340] = 255  # a bar
    Image.fromarray(img).save(tmp_path / "big.png")
    sample = load_image(tmp_path / "big.png", (1, 8, 8))
    assert sample.shape == (1, 8, 8) and sample.dtype == np.float32
    assert sample[0, 4, 3:5].max() > 0.1 and sample[0, 0].max() == 0


def test_corrupt_data_files(tmp_path, capsys, run_folder):
    (tmp_path / "x.npy").write_bytes(b"\x93NUMPY garbage")
    code, err = _run(capsys, "predict", str(run_folder / "model.lf"), str(tmp_path / "x.npy"))
    assert code == EXIT_DATA and "x.npy: cannot read the array" in err
    (tmp_path / "d.npz").write_bytes(b"PK\x03\x04 not really")
    code, err = _run(capsys, "evaluate", str(run_folder / "model.lf"), "--data", str(tmp_path / "d.npz"))
    assert code == EXIT_DATA and "d.npz: expected an .npz archive" in err
    (tmp_path / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code, err = _run(capsys, "predict", str(run_folder / "model.lf"), str(tmp_path / "img.png"))
    assert code == EXIT_DATA and "img.png: cannot read the image" in err


def test_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff")
    with pytest.raises(lf.ConfigError, match="not UTF-8"):
        main(["--debug", "train", "--config", str(bad)])
    with pytest.raises(lf.ConfigError, match="not UTF-8"):
        main(["train", "--config", str(bad), "--debug"])


def test_an_internal_error_and_an_interruption(capsys, monkeypatch):
    import learnflux.cli.summary as summary

    monkeypatch.setattr(summary, "main", lambda args: 1 / 0)  # each call builds its parser anew
    code, err = _run(capsys, "summary", "x")
    assert code == EXIT_INTERNAL and "internal error (ZeroDivisionError" in err and "--debug" in err

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(summary, "main", interrupted)
    code, err = _run(capsys, "summary", "x")
    assert code == EXIT_INTERRUPTED and err == "learnflux summary: interrupted"


def test_the_installed_command_prints_a_message_not_a_traceback(tmp_path):
    bad = tmp_path / "model.lf"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    done = subprocess.run(
        [sys.executable, "-m", "learnflux", "predict", str(bad), "--sample", "0"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == EXIT_DATA
    assert "Traceback" not in done.stderr and f"learnflux predict: error: {bad}:" in done.stderr


def test_resume_errors(tmp_path, capsys, run_folder):
    code, err = _run(capsys, "train", "--resume", str(tmp_path / "none"))
    assert code == EXIT_USAGE and "no such run folder" in err
    code, err = _run(capsys, "train", "--resume", str(run_folder))
    assert code == EXIT_USAGE and "that run finished" in err
    code, err = _run(capsys, "train", "--resume", str(run_folder), "--epochs", "3")
    assert code == EXIT_USAGE and "cannot be combined with --epochs" in err
