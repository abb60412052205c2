"""Keep the training libraries' chatter out of the user's output.

Lightning and scvi-tools report things that are not a gde user's business (which
accelerators exist, a logger tip, deprecations inside Lightning, scvi-tools' registration
transfer and file checks). :func:`quiet_backend` silences them for the duration of one
gde call, then restores the loggers and the warning filters exactly as they were, so the
user's own warnings and logging settings are never touched.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

# loggers whose INFO lines describe the libraries' internals
_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "scvi")
# warnings raised inside these libraries about their own use
_MODULES = r"(lightning|lightning_fabric|pytorch_lightning|scvi)(\.|$)"
_MESSAGES = (
    r".*does not have many workers.*",  # the set sampler's loader is in-process by design
    r".*log_every_n_steps.*",
    r".*LeafSpec.*",
)


@contextmanager
def quiet_backend() -> Iterator[None]:
    """Silence Lightning's and scvi-tools' INFO lines and internal warnings in a block."""
    levels = {}
    for name in _LOGGERS:
        log = logging.getLogger(name)
        levels[name] = log.level
        if log.getEffectiveLevel() < logging.WARNING:
            log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=_MODULES)
            for message in _MESSAGES:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def ignore_import_noise() -> None:
    """Filter the one warning importing the stack gives outside a widget-enabled notebook."""
    warnings.filterwarnings("ignore", message="IProgress not found")
