"""Where the runs of a sweep execute: in process (``local``) or as Ray tasks (``ray``).

An engine takes the runs still to do (:class:`~lrscope.engines.worker.Task`) and yields one
:class:`~lrscope.core.sweep.RunRecord` per run as it finishes, in completion order; the sweep
driver (:func:`lrscope.sweep`) appends each to the results file at once. A run that raises, or
whose worker process dies, still yields a record (with ``error`` set), so nothing is dropped.
"""

from __future__ import annotations

ENGINES = ("local", "ray")
