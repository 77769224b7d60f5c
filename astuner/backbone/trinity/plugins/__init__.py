"""Trinity-RFT plugins astuner puts on ``TRINITY_PLUGIN_DIRS`` (Trinity's own plugin mechanism).

Trinity's loader imports every ``*.py`` here (not ``__init__.py``) in each of its processes; the
Trinity backbone's plan names this folder only where a plugin applies (``colocate_engine``).
"""

from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent
