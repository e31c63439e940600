"""The training floor: how a network is trained, checked and watched.

- :mod:`~learnflux.training.train`: the trainer (``Trainer``, ``FitOptions``, ``Evaluator``,
  ``fit``, ``evaluate``, ``predict``), public as ``lf.train``;
- :mod:`~learnflux.training.callbacks`: the fit loop's callbacks (``lf.callbacks``);
- :mod:`~learnflux.training.checkpoint`: ``BackupAndRestore``, a run resumed bit for bit;
- :mod:`~learnflux.training.metrics`: the metrics ``fit`` reports (``lf.metrics``);
- :mod:`~learnflux.training.progress`: the progress lines of ``verbose``;
- :mod:`~learnflux.training.summary`: ``lf.summary``, a model's layers, shapes and FLOPs;
- :mod:`~learnflux.training.trace`: a training run recorded step by step (``lf.trace``).

Beside it on the same floor: :mod:`learnflux.files` (saving and loading models, which the trainer's
callbacks and backups write through) and :mod:`learnflux.data` (loaders, splits, datasets). These
import the floors below (core, layers, losses, optimizers); ``Trace.to_html`` / ``to_npz`` /
``to_text`` call up into :mod:`learnflux.flow` from inside those methods (tests/test_floors.py).
"""
