"""``learnflux train``: train a model described by a TOML config (default: a small CNN on the
embedded digits), then test it and write the run folder."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..config import DEFAULT_CONFIG, RunConfig, default_config, load_config
from ..errors import ConfigError
from .argtypes import non_negative_int, positive_int

#: the files of a run folder; ``--overwrite`` removes them before a new run writes its own
RUN_FILES = (
    "model.lf",
    "metrics.json",
    "history.csv",
    "curves.png",
    "config.toml",
    "preprocess.json",
    "train_state.lfs",
    "sample.txt",
)
#: what a text run (a language model) samples at its end, into sample.txt: that many characters,
#: drawn at that temperature, after the first words of the held-out text
SAMPLE_LENGTH, SAMPLE_TEMPERATURE, SAMPLE_PROMPT = 300, 0.8, 40

EPILOG = """\
{default_run}

the run folder (--out, else [output] dir, else a new runs/<timestamp>) receives:
  model.lf       the trained model (lf.load("model.lf"); JSON architecture + arrays, no pickle)
  metrics.json   test_accuracy, test_loss, epochs, seconds, model_path, the final train/val values
  history.csv    one row per epoch: loss, accuracy, lr, val_loss, val_accuracy
  curves.png     loss and accuracy per epoch, train and validation
  config.toml    the config of the run (what `learnflux evaluate` uses to rebuild the split)
  preprocess.json  the standardisation statistics, when [data] standardize = true
  sample.txt     a text run (a language model): text sampled from the trained model (its
                 vocabulary is in model.lf's metadata: `learnflux generate RUN/model.lf`)
  train_state.lfs  while it trains: the whole training state, written at each epoch end (and
                 every --backup-every updates); an interrupted run (Ctrl-C, kill, power cut)
                 continues from it with `learnflux train --resume RUN_DIR`, ending exactly as
                 the uninterrupted run would have (same weights, bit for bit); deleted at the end
A run never replaces another: when the folder already holds files, train stops before loading
any data and says so; choose another --out, or pass --overwrite to replace that run.

config format (TOML; every table but [model] is optional; the values shown are those a config
gets for the keys it leaves out):
  [data]
  dataset = {dataset:<14}# "digits" | "mnist" | "fashion" | "csv" | "text"
  root = "data/mnist"     # mnist/fashion (required): the folder with the IDX files (.gz or raw)
  download = {download:<13}# mnist/fashion: fetch the missing files (SHA-256 checked); or --download
  base_url = "https://…/" # optional: download from this folder URL instead of the official
                          #   mirrors (the files must still match the official SHA-256)
  path = "data.csv"       # csv (required): the file
  target = {target:<15}# csv: the target column (index or header name)
  val_fraction = {val_fraction:<9}# validation part, taken from the training data
  test_fraction = {test_fraction:<8}# test part, taken first (digits, csv; mnist uses its test files)
  stratify = {stratify:<13}# keep class proportions in the splits
  standardize = {standardize:<10}# z = (x - mean) / std fitted on the training part
  limit = {limit:<16}# > 0: only that many training samples
  text = "pride-and-prejudice" # text: the embedded novel (the default), or path = a UTF-8 file
  context = {context:<14}# text: characters per window (x = a window, y = it shifted by one)
  stride = 64             # text: a training window every stride characters (default: context);
                          #   split contiguously: train first, then val_fraction, test_fraction

  [model]
  input_shape = [1, 8, 8] # optional, the data's sample shape by default
  [[model.layers]]        # one table per layer, in order
  type = "Conv2d"         # a layer class of learnflux, then its arguments
  out_channels = 16       # in_channels / in_features / num_features can be
  kernel_size = 3         # left out: inferred from the incoming shape
  padding = 1

  [loss]                      # default: CrossEntropyLoss for class labels, else MSELoss
  type = "CrossEntropyLoss"   # plus its arguments (label_smoothing = 0.1 ...)
  [optimizer]                 # default: {optimizer}
  type = "Adam"               # SGD, Adam, AdamW, RMSprop, Adagrad + arguments
  lr = 0.001
  no_decay = ["bias", "norm"] # with weight_decay: no decay on biases, norm layers
  [schedule]                  # optional: StepLR, CosineAnnealingLR, OneCycleLR ...
  type = "CosineAnnealingLR"  # T_max / total_steps default to the run length
  interval = "epoch"          # or "step"
  [training]
  epochs = {epochs:<19}# `--epochs` overrides it (likewise --seed, and --lr)
  batch_size = {batch_size:<15}# `--batch-size` overrides it
  seed = {seed:<21}# weights, split, shuffling: same seed, same run
  metrics = {metrics:<18}# for class labels (none for numbers); also "top3_accuracy" ...
  clip_norm = {clip_norm:<16}# > 0: clip the gradient's global norm
  accumulate = {accumulate:<15}# batches per update (gradient accumulation)
  early_stopping = {early_stopping:<11}# > 0: patience on val_loss, best weights kept
  [output]
  dir = "runs/my-run"         # default: a new runs/<timestamp>

errors in the config (unknown layer or key, wrong type, shapes that do not fit between layers)
are reported with the file, line and key path before any training starts.
examples: examples/*.toml

{exit_codes}
"""


def _toml(value: Any) -> str:
    """A default as it would be written in a TOML file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def describe_default_run() -> str:
    """What ``learnflux train`` runs without ``--config``, generated from ``DEFAULT_CONFIG``
    (the model is built to count its parameters, with the global generator left untouched)."""
    from ..config import build_model
    from ..seeding import get_rng
    from .summary import _SAMPLE_SHAPES

    cfg = default_config()
    rng = get_rng()
    state = rng.bit_generator.state
    try:
        model = build_model(cfg, cfg.input_shape or _SAMPLE_SHAPES[cfg.data["dataset"]])
    finally:
        rng.bit_generator.state = state
    names = [repr(layer).replace("()", "") for layer in model.layers[1:]]
    lines, line = [], "  model      "
    for i, name in enumerate(names):
        piece = name + (" → " if i < len(names) - 1 else "")
        if len(line) + len(piece) > 94:
            lines.append(line.rstrip())
            line = "             "
        line += piece
    lines.append(line)
    n_params = sum(int(p.size) for p in model.parameters())
    d, t = cfg.data, cfg.training

    def call(spec: dict) -> str:
        return f"{spec['type']}({', '.join(f'{k}={v}' for k, v in spec['args'].items())})"

    schedule = f", {cfg.schedule['type']} per {cfg.schedule.get('interval', 'epoch')}" if cfg.schedule else ""
    return "\n".join(
        [
            "without --config, the default run (`learnflux train --print-config` prints its config):",
            f"  data       {d['dataset']}: the embedded 8×8 handwritten digits; test_fraction = "
            f"{d['test_fraction']} held out",
            f"             for the test, then val_fraction = {d['val_fraction']} of the rest for "
            f"validation{' (stratified)' if d['stratify'] else ''}",
            *lines,
            f"             {n_params:,} parameters",
            f"  loss       {call(cfg.loss)}",
            f"  optimizer  {call(cfg.optimizer)}{schedule}",
            f"  training   {t['epochs']} epochs of batches of {t['batch_size']}, seed {t['seed']}",
        ]
    )


def epilog() -> str:
    """The text after the options of ``learnflux train --help``, generated from the real
    defaults (``DEFAULT_CONFIG``, ``DATA_DEFAULTS``, ``TRAINING_DEFAULTS``, ``OPTIMIZER_DEFAULT``)."""
    from ..config import DATA_DEFAULTS, OPTIMIZER_DEFAULT, TRAINING_DEFAULTS

    values = {k: _toml(v) for k, v in {**DATA_DEFAULTS, **TRAINING_DEFAULTS}.items()}
    values["metrics"] = '["accuracy"]' if TRAINING_DEFAULTS["metrics"] is None else values["metrics"]
    opt = OPTIMIZER_DEFAULT
    values["optimizer"] = f"{opt['type']}({', '.join(f'{k}={v}' for k, v in opt['args'].items())})"
    from .failures import EXIT_CODES_HELP

    return EPILOG.format(default_run=describe_default_run(), exit_codes=EXIT_CODES_HELP, **values)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model (default: a small CNN on the embedded digits)",
        description="Train a model from a TOML config (default: a small CNN on the embedded\n"
        "8×8 digits), test it, and write the model, metrics, history and curves to a run folder.\n"
        "Under `mpiexec -n N` (the mpi extra) it trains data-parallel on N processes: [training]\n"
        "batch_size is then the global batch, shared among them; rank 0 shows the progress and\n"
        "writes the one run folder (docs/distributed.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    format_help = p.format_help

    def format_help_with_epilog() -> str:  # the epilog builds the default model: only for --help
        p.epilog = epilog()
        return format_help()

    p.format_help = format_help_with_epilog  # type: ignore[method-assign]
    p.add_argument("--config", metavar="FILE", help="TOML run description (format below)")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="run folder (default: [output] dir, else a new runs/<timestamp>); "
        "an existing folder that holds files is refused unless --overwrite",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in the --out / [output] dir folder (its run files are deleted first)",
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="mnist / fashion: download the missing IDX files (SHA-256 checked against the "
        "official checksums) into [data] root; same as download = true in [data]",
    )
    p.add_argument("--epochs", type=positive_int, help="override [training] epochs")
    p.add_argument(
        "--batch-size",
        type=positive_int,
        help="override [training] batch_size (under mpiexec: the global batch)",
    )
    p.add_argument("--seed", type=non_negative_int, help="override [training] seed")
    p.add_argument("--lr", type=float, help="override [optimizer] lr")
    p.add_argument("--quiet", action="store_true", help="no progress output, only the result")
    p.add_argument("--no-plot", action="store_true", help="do not draw curves.png")
    p.add_argument("--print-config", action="store_true", help="print the config that would run, and exit")
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the interrupted run in RUN_DIR from its train_state.lfs, with its own "
        "config.toml (the result is the uninterrupted run's, bit for bit)",
    )
    p.add_argument(
        "--backup-every",
        type=positive_int,
        metavar="STEPS",
        help="also write train_state.lfs every STEPS updates (default: at each epoch end)",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    world = data_parallel_world()
    if world is None:
        return _main(args, None)
    if world.rank == 0:  # the pids: what mpiexec names if a rank dies
        print(f"learnflux train: data-parallel over {world.describe()}", file=sys.stderr, flush=True)
    try:
        return _main(args, world)
    except (Exception, KeyboardInterrupt) as exc:  # the other ranks must not wait for this one
        from .failures import classify

        if getattr(args, "debug", False):
            import traceback

            traceback.print_exc()
        code, message = classify(exc)
        world.abort(f"learnflux train: error on rank {world.rank} of {world.size}: {message}", code or 1)
        return code  # pragma: no cover - abort does not return


def data_parallel_world() -> Any:
    """The job's MPI world when an MPI launcher (``mpiexec -n N``, ``srun``) started this process
    as one of N > 1 ranks, else None (a plain run imports no MPI)."""
    from ..distributed.world import launched_size

    if launched_size() <= 1:
        return None
    from ..distributed import init

    world = init()
    return world if world.size > 1 else None


def _main(args: argparse.Namespace, world: Any) -> int:
    if args.resume:
        return resume_main(args, world)
    if args.print_config:
        print(load_config(args.config).text if args.config else DEFAULT_CONFIG, end="")
        return 0
    cfg = load_config(args.config) if args.config else default_config()
    cfg.download_hint = "pass --download to fetch them (SHA-256 checked; or set download = true in [data])"
    if args.download:
        cfg.data["download"] = True
    overrides: dict[tuple[str, str], Any] = {}
    if args.epochs is not None:
        cfg.training["epochs"] = overrides["training", "epochs"] = args.epochs
    if args.batch_size is not None:
        cfg.training["batch_size"] = overrides["training", "batch_size"] = args.batch_size
    if args.seed is not None:
        cfg.training["seed"] = overrides["training", "seed"] = args.seed
    if args.lr is not None:
        if not args.lr > 0:
            raise ConfigError(f"--lr must be positive, got {args.lr}")
        cfg.optimizer["args"]["lr"] = overrides["optimizer", "lr"] = args.lr
    record_overrides(cfg, overrides)
    if args.out:
        out, origin = Path(args.out), "--out"
    elif cfg.output_dir:
        out, origin = Path(cfg.output_dir), f"[output] dir of {cfg.source}"
    else:
        out, origin = default_run_dir(), "a new runs/<timestamp>"
    if world is not None:  # one run folder: rank 0's timestamp
        out = Path(world.broadcast(str(out)))
    verbose = 0 if args.quiet or not _is_root(world) else (1 if sys.stdout.isatty() else 2)
    with _resume_hint(out):
        result = run(
            cfg,
            out,
            verbose=verbose,
            plot=not args.no_plot,
            overwrite=args.overwrite,
            origin=origin,
            backup_every=args.backup_every,
            world=world,
        )
    if not _is_root(world):
        return 0
    print(result_line(result))
    sample = "sample.txt, " if "sample" in result else ""
    if sample:
        print(sample_lines(result["sample"]))
    curves = "" if args.no_plot else ", curves.png"
    print(f"run folder: {out}  ({sample}model.lf, metrics.json, history.csv{curves})")
    return 0


def _is_root(world: Any) -> bool:
    return world is None or world.rank == 0


def resume_main(args: argparse.Namespace, world: Any = None) -> int:
    """``learnflux train --resume RUN_DIR``: the run of RUN_DIR, continued from its backup."""
    given = [
        flag
        for flag, value in (
            ("--config", args.config),
            ("--out", args.out),
            ("--overwrite", args.overwrite),
            ("--epochs", args.epochs),
            ("--batch-size", args.batch_size),
            ("--seed", args.seed),
            ("--lr", args.lr),
            ("--print-config", args.print_config),
        )
        if value not in (None, False)
    ]
    if given:
        raise ConfigError(
            f"--resume continues a run with its own config.toml: it cannot be combined with "
            f"{', '.join(given)}"
        )
    out = Path(args.resume)
    cfg = resume_config(out)
    if args.download:
        cfg.data["download"] = True
    cfg.download_hint = "pass --download to fetch them (SHA-256 checked; or set download = true in [data])"
    verbose = 0 if args.quiet or not _is_root(world) else (1 if sys.stdout.isatty() else 2)
    with _resume_hint(out):
        result = run(
            cfg,
            out,
            verbose=verbose,
            plot=not args.no_plot,
            resume=True,
            backup_every=args.backup_every,
            world=world,
        )
    if not _is_root(world):
        return 0
    print(result_line(result))
    curves = "" if args.no_plot else ", curves.png"
    print(f"run folder: {out}  (resumed; model.lf, metrics.json, history.csv{curves})")
    return 0


def resume_config(out: Path) -> RunConfig:
    """The config of the interrupted run in ``out``, once checked that there is one to resume."""
    from ..training.checkpoint import STATE_FILE

    if not out.is_dir():
        raise ConfigError(f"--resume {out}: no such run folder")
    if not (out / STATE_FILE).is_file():
        if (out / "metrics.json").is_file():
            raise ConfigError(
                f"--resume {out}: that run finished (its metrics.json is there): nothing to resume"
            )
        raise ConfigError(
            f"--resume {out}: no {STATE_FILE} in that folder: it is not a run of `learnflux train`, or "
            f"it was stopped before its first backup (the end of its first epoch); start it again "
            f"with --out {out} --overwrite"
        )
    if not (out / "config.toml").is_file():
        raise ConfigError(
            f"--resume {out}: no config.toml in that folder (it is not a run of `learnflux train`)"
        )
    return load_config(out / "config.toml")


class _resume_hint:
    """On Ctrl-C during a run, say how to resume it (when it has a backup to resume from)."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        from ..training.checkpoint import STATE_FILE

        if kind is KeyboardInterrupt and (self.out / STATE_FILE).is_file():
            print(
                f"learnflux train: interrupted; continue this run with: learnflux train --resume {self.out}",
                file=sys.stderr,
            )


def sample_lines(sample: dict[str, Any]) -> str:
    """The sample of a text run, as printed: a heading, then the prompt and what followed."""
    return (
        f"sample (temperature {sample['temperature']}, seed {sample['seed']}; the prompt "
        f"{sample['prompt']!r} is the start of the held-out text):\n{sample['prompt']}{sample['text']}"
    )


def result_line(result: dict[str, Any]) -> str:
    """``test accuracy: 0.9926 (test loss 0.5123)``; a run without a test split says which
    split its numbers come from instead."""
    if "test_loss" in result:
        head, split = "", "test"
        values = {k[5:]: v for k, v in result.items() if k.startswith("test_")}
    else:
        last = result["final"]
        src = "val_" if "val_loss" in last else ""
        head, split = "no test split (test_fraction = 0): ", "validation" if src else "training"
        values = {k[len(src) :]: v for k, v in last.items() if k.startswith(src)}
    if values.get("bits_per_char") is not None:
        bpc = values["bits_per_char"]
        return f"{head}{split} bits per character: {bpc:.4f} ({split} loss {values['loss']:.4f})"
    if values.get("accuracy") is not None:
        return f"{head}{split} accuracy: {values['accuracy']:.4f} ({split} loss {values['loss']:.4f})"
    return f"{head}{split} loss: {values['loss']:.6g}"


def record_overrides(cfg: RunConfig, overrides: dict[tuple[str, str], Any]) -> None:
    """Write the command line's overrides (``--seed`` ...) into ``cfg.text``, the text saved as
    the run's ``config.toml``: ``learnflux evaluate`` rebuilds the run's split from it, so it must
    hold the seed the run really used."""
    from ..config import locate, parse_config

    text = cfg.text
    for (table, key), value in overrides.items():
        lines = text.splitlines()
        line = f"{key} = {_toml(value)}  # set on the command line"
        at = locate(text, [table, key])
        header = re.compile(rf"^\s*\[\s*{table}\s*\]\s*(#.*)?$")
        if at and re.match(rf"^\s*{key}\s*=", lines[at - 1]):
            lines[at - 1] = line
        elif at and header.match(lines[at - 1]):
            lines.insert(at, line)
        else:  # no such table yet
            first = [] if table != "optimizer" else [f'type = "{cfg.optimizer["type"]}"']
            lines += ["", f"[{table}]", *first, line]
        text = "\n".join(lines) + "\n"
    if text == cfg.text:
        return
    try:  # the edited text must say the same as the config with its overrides
        edited = parse_config(text, cfg.source)
        same = edited.training == cfg.training and edited.optimizer == cfg.optimizer
    except ConfigError:
        same = False
    if same:
        cfg.text = text
    else:
        print(
            "learnflux train: warning: the run's config.toml keeps the file's values: the "
            f"overrides {', '.join(f'{t}.{k} = {v}' for (t, k), v in overrides.items())} could "
            "not be written into it (learnflux evaluate will not see them)",
            file=sys.stderr,
        )


def default_run_dir() -> Path:
    base = Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    path, i = base, 1
    while path.exists():
        i += 1
        path = Path(f"{base}-{i}")
    return path


def check_run_dir(out: Path, overwrite: bool = False, origin: str = "the run folder") -> None:
    """A run never silently replaces another: ``out`` must be absent or empty, unless
    ``overwrite`` (then :func:`run` deletes the files of the earlier run, ``RUN_FILES``, once
    every check has passed; other files stay)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"run folder {out} (from {origin}) is a file, not a folder")
    held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not held:
        return
    if not overwrite:
        shown = ", ".join(held[:5]) + (f" and {len(held) - 5} more" if len(held) > 5 else "")
        interrupted = (
            f" (an interrupted run: continue it with `learnflux train --resume {out}`)"
            if "train_state.lfs" in held
            else ""
        )
        raise ConfigError(
            f"run folder {out} (from {origin}) already holds {shown}{interrupted}; a run never "
            "replaces another: choose another folder with --out DIR, or pass --overwrite to replace that run"
        )


def run(
    cfg: RunConfig,
    out: Path,
    verbose: Any = 0,
    plot: bool = True,
    overwrite: bool = False,
    origin: str = "the run folder",
    resume: bool = False,
    backup_every: Optional[int] = None,
    world: Any = None,
) -> dict[str, Any]:
    """Everything ``learnflux train`` does, callable from Python: check and build, train, test,
    write the run folder; returns the content of ``metrics.json``. ``out`` must be absent or
    empty unless ``overwrite`` (see :func:`check_run_dir`; ``origin`` says in its message where
    the folder name came from).

    The training state is backed up to ``out/train_state.lfs`` at each epoch end (and every
    ``backup_every`` updates); with ``resume=True`` the run continues from it (``out`` then
    holds the interrupted run, whose ``config.toml`` is ``cfg``).

    ``world``: a data-parallel job's world (:mod:`learnflux.distributed`): every rank trains its
    share of each global batch, rank 0 alone writes the run folder."""
    from ..config import (
        build_callbacks,
        build_loss,
        build_model,
        build_optimizer,
        build_schedule,
        build_trainer,
        check_output,
        load_data,
    )
    from ..files.io import atomic_write, save
    from ..training.callbacks import CSVLogger, TerminateOnNaN
    from ..training.checkpoint import BackupAndRestore
    from ..training.summary import summary

    # every check happens here, before any training
    out = Path(out)
    root = world is None or world.rank == 0  # the rank that writes the run folder
    if not resume and root:
        check_run_dir(out, overwrite, origin)
    dataset = load_data(cfg)
    model = build_model(cfg, dataset.sample_shape)
    check_output(cfg, model, dataset)
    loss = build_loss(cfg, dataset)
    optimizer = build_optimizer(cfg, model)
    t = cfg.training
    n_train = len(dataset.train[0])
    batches = -(-n_train // t["batch_size"])  # per epoch, the last one may be shorter
    steps = max(1, -(-batches // t["accumulate"]))  # updates: a last, shorter group makes one too
    schedule, interval = build_schedule(cfg, optimizer, steps)

    if overwrite and root:  # the earlier run's files go: nothing of it can be mistaken for this run's
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
    if root:
        out.mkdir(parents=True, exist_ok=True)
    if not resume and root:  # a resumed run keeps the config.toml it started with
        _write_text(out / "config.toml", cfg.text, atomic_write)
    if dataset.standardizer is not None and root:
        _write_text(
            out / "preprocess.json",
            json.dumps({"standardizer": dataset.standardizer.get_config()}),
            atomic_write,
        )
    # kept until the run folder is complete: a run killed after its last epoch resumes too; last,
    # so that it saves the state the other callbacks (early stopping) have at an epoch's end
    backup = BackupAndRestore(out, save_freq=backup_every or "epoch", delete_checkpoint=False)
    callbacks = [TerminateOnNaN(), CSVLogger(out / "history.csv"), *build_callbacks(cfg, dataset), backup]
    trainer = build_trainer(cfg, model, dataset, loss, optimizer, schedule, interval, callbacks, verbose)
    if verbose:
        s = summary(model)
        sizes = ", ".join(
            f"{name} {len(part[0])}"
            for name, part in (("train", dataset.train), ("val", dataset.val), ("test", dataset.test))
            if part
        )
        print(f"data: {dataset.description} · {sizes}")
        print(
            f"model: {len(model.layers) - 1} layers, {s.total_params:,} parameters, "
            f"{s.total_flops:,} FLOPs per sample · {type(optimizer).__name__} · "
            f"{t['epochs']} epoch{'s' if t['epochs'] > 1 else ''} of batches of {t['batch_size']}"
        )
    if world is not None:  # the same run over the ranks (docs/distributed.md)
        from ..distributed import DistributedTrainer

        trainer = DistributedTrainer(model, options=trainer.options, world=world)
    history = trainer.fit(*dataset.train, validation_data=dataset.val)
    model_path = out / "model.lf"
    if root:  # a language model's vocabulary and window travel with it (learnflux generate)
        vocab = dataset.vocabulary
        meta = (
            None if vocab is None else {"vocabulary": vocab.to_config(), "context": dataset.sample_shape[0]}
        )
        save(model, model_path, metadata=meta)
    result: dict[str, Any] = {}
    if dataset.test is not None:
        test = trainer.evaluate(*dataset.test)
        result.update({f"test_{k}": v for k, v in test.items()})
    last = {k: v[-1] for k, v in history.history.items()}
    result.update(
        {
            "epochs": len(history),
            "seconds": round(history.seconds, 3),
            "model_path": str(model_path),
            "dataset": cfg.data["dataset"],
            "samples": {
                "train": n_train,
                "val": len(dataset.val[0]) if dataset.val else 0,
                "test": len(dataset.test[0]) if dataset.test else 0,
            },
            "seed": cfg.seed,
            "parameters": int(sum(p.size for p in model.parameters())),
            "final": last,
            "stop_reason": history.stop_reason,
            "config": cfg.source,
        }
    )
    if dataset.vocabulary is not None and root:
        result["sample"] = sample_text(model, dataset, cfg.seed)
    if not root:
        return result
    _write_text(out / "metrics.json", json.dumps(_jsonable(result), indent=2) + "\n", atomic_write)
    if "sample" in result:
        _write_text(
            out / "sample.txt", result["sample"]["prompt"] + result["sample"]["text"] + "\n", atomic_write
        )
    if plot:
        plot_curves(history, out / "curves.png")
    backup.path.unlink(missing_ok=True)  # the run is complete: nothing left to resume
    return result


def sample_text(model: Any, dataset: Any, seed: int) -> dict[str, Any]:
    """A language model's sample: ``SAMPLE_LENGTH`` characters after the first words of the
    held-out text (validation, else test, else training), seeded by the run's seed."""
    from ..sampling import generate

    vocab = dataset.vocabulary
    part = dataset.val or dataset.test or dataset.train
    head = vocab.decode(part[0][:4].reshape(-1))  # its first windows, back to back
    # from the first paragraph (else word) that starts there, up to a word's end
    at = head.find("\n\n")
    at = at + 2 if 0 <= at < len(head) - SAMPLE_PROMPT else head.find(" ") + 1
    start = head[at : at + SAMPLE_PROMPT]
    prompt = start[: start.rfind(" ")] if " " in start.strip() else start
    text = generate(model, vocab, prompt, SAMPLE_LENGTH, SAMPLE_TEMPERATURE, seed=seed)
    return {"prompt": prompt, "text": text, "temperature": SAMPLE_TEMPERATURE, "seed": seed}


def _jsonable(value: Any) -> Any:
    import math

    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


def _write_text(path: Path, text: str, atomic_write: Any) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def plot_curves(history: Any, path: Path) -> Optional[Path]:
    """Loss and accuracy per epoch, train and validation, into a PNG (matplotlib, Agg)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install learnflux[train]): no curves.png", file=sys.stderr)
        return None
    h = history.history
    epochs = [e + 1 for e in history.epoch]
    metric = next((k for k in h if k not in ("loss", "lr") and not k.startswith("val_")), None)
    panels = [("loss", "loss")] + ([(metric, metric.replace("_", " "))] if metric else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        ax.plot(epochs, h[key], "o-", ms=3, label="train")
        if "val_" + key in h:
            ax.plot(epochs, h["val_" + key], "s-", ms=3, label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
        values = [v for v in h[key] + h.get("val_" + key, []) if np.isfinite(v)]
        if key == "loss" and values and min(values) > 0 and max(values) > 20 * min(values):
            ax.set_yscale("log")  # losses spanning orders of magnitude
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
