"""The errors learnflux raises. Each message names the layer (or component) at fault."""


class LearnfluxError(Exception):
    """Base class of every error raised on purpose by learnflux."""


class ShapeError(LearnfluxError, ValueError):
    """An array does not have the shape a layer, loss or model expects."""


class DtypeError(LearnfluxError, TypeError):
    """An array has a dtype that cannot be used (strings, complex numbers, objects...)."""


class NonFiniteError(LearnfluxError, ValueError):
    """A NaN or an infinity reached a place where it cannot be handled."""


class PhaseError(LearnfluxError, RuntimeError):
    """Something was asked that the current phase (training / inference) forbids."""


class ExactnessError(LearnfluxError, TypeError):
    """A layer cannot run in exact rational arithmetic (e.g. Sigmoid, Tanh)."""


class ConfigError(LearnfluxError, ValueError):
    """A configuration (layer arguments, saved file, config file) is invalid."""


class DataError(LearnfluxError, ValueError):
    """Data cannot be used: a corrupt or truncated file, a bad CSV row, an unfitted transform..."""


class DownloadError(LearnfluxError, OSError):
    """A download failed: HTTP error, timeout, unreachable host, interrupted transfer, bad checksum."""


class IndexRangeError(LearnfluxError, IndexError):
    """An integer index (e.g. a token id entering an Embedding) is outside the valid range."""


class FileFormatError(ConfigError):
    """A file is not a valid learnflux file (a saved model or a training state): not an archive,
    truncated, corrupt, hostile, or larger than it may be. The message names the file, the entry
    at fault (a member of the archive, a key of its header, a layer) and what is wrong with it.
    Loading never runs code from a file, and refuses it before allocating what it declares."""


class UnsupportedTorchOption(ConfigError):
    """A PyTorch module uses an option the learnflux layer cannot reproduce (raised by a layer's
    ``from_torch_module`` with the option, e.g. ``"dilation=2"``; ``lf.from_torch`` reports it as
    a ConfigError naming the module and its path)."""
