"""See the machinery of any model: its learning flow, a page to explore it, what it looks at.

* :func:`explain_model`: record a saved model's (or a config's) training steps on a few of its
  samples, every ``o^k``, ``δ^k``, ``δw`` and ``ŵ`` (``learnflux explain MODEL``);
* :func:`render_page` / :func:`write_page`: the learning-flow page, one self-contained HTML file
  (``learnflux explain --format html``);
* :func:`save_npz`: every value of a trace in a NumPy archive (``--format npz``);
* :func:`describe_tensor`: one line that summarises a large tensor (the text output).

What the model looks at (saliency, maximal activation) is in :mod:`learnflux.look`.
"""

from .arrays import save_npz, trace_arrays
from .graph import graph_nodes
from .page import page_data, render_page, write_page
from .record import explain_model, find_model
from .summary import describe_tensor, summarize
from .text import long_markdown, long_text

__all__ = [
    "describe_tensor",
    "explain_model",
    "find_model",
    "graph_nodes",
    "long_markdown",
    "long_text",
    "page_data",
    "render_page",
    "save_npz",
    "summarize",
    "trace_arrays",
    "write_page",
]
