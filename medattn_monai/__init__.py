"""medattn-monai: test rigorously whether self-attention helps CNNs in medical image classification.

The subpackages are layers: a package imports only packages below it, and the packages on one line do not import
each other (``docs/architecture.md`` says what each holds; ``lint-imports`` checks the contract)::

    cli
    cli_help | models_command
    study
    search | explain | export
    stats
    engine
    handlers
    tracking
    networks | metrics | data
    errors | console

Nothing heavy is imported here so that ``import medattn_monai`` stays cheap.
"""

from __future__ import annotations

from .errors import ConfigError, DataError, MedattnError, install_excepthook

__version__ = "0.1.0"

__all__ = ["ConfigError", "DataError", "MedattnError", "install_excepthook", "__version__"]
