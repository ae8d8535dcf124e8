"""The Hydra configs (``config.yaml`` for ``run.py``, ``summary.yaml``, and one folder per config
group). A package so that they install with the code and Hydra finds them as ``pkg://video_gn.conf``
from any folder; ``conf/`` at the top of the repository is a link here."""
