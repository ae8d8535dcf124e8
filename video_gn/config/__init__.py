"""The run's configuration: where it lives (``conf/``), the checks every value passes before any
work (``checks``), and the messages that fix a mistyped command line (``overrides``)."""

from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def load_option(group: str, option: str) -> dict:
    """One option of a config group as a plain mapping (``conf/<group>/<option>.yaml``)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / group / f"{option}.yaml"))

