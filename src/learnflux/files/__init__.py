"""Model files: saving and loading learnflux's own format, on the training floor.

- :mod:`~learnflux.files.io`: ``save``, ``load``, ``load_metadata``, ``read_array`` and
  ``atomic_write`` (a crash while writing keeps the previous file);
- :mod:`~learnflux.files.fileformat`: the JSON header (the layers' configs, checked before any
  layer is built) and the plan of the arrays a model expects;
- :mod:`~learnflux.files.archive`: the zip archive of ``.npy`` arrays, read with limits on sizes
  and entries (loading a file never runs code).

These import only the floors below (the core and the ground floor); the trainer, callbacks and
backups of :mod:`learnflux.training`, and the exchange formats, write through them.
"""
