"""medattn-monai: test rigorously whether self-attention helps CNNs in medical image classification.

Subpackages follow the dependency direction of the project (see ``docs/architecture.md``):
``cli`` -> {``search``, ``stats``, ``explain``, ``data``} -> {``tracking``/``handlers``, ``networks``, ``metrics``, ``data``}.
Nothing heavy is imported here so that ``import medattn_monai`` stays cheap.
"""

from __future__ import annotations

from .errors import ConfigError, DataError, MedattnError, install_excepthook

__version__ = "0.1.0"

__all__ = ["ConfigError", "DataError", "MedattnError", "install_excepthook", "__version__"]
