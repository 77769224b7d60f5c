"""logview: a local, token-level viewer of an experiment's trajectories.

``astuner logview <experiment folder>`` serves any past or running experiment read-only;
``astuner --conf X.yaml --with-logview`` starts it next to the run (``LogviewProcess``).
"""

from astuner.logview.process import LogviewProcess
from astuner.logview.server import make_server

__all__ = ["LogviewProcess", "make_server"]
