"""The run's configuration: where it lives (``video_gn/conf``, inside the package so an installed
copy has it; ``conf/`` in the repository links there), the checks every value passes before any
work (``checks``), and the messages that fix a mistyped command line (``overrides``)."""

from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def load_option(group: str, option: str) -> dict:
    """One option of a config group as a plain mapping (``conf/<group>/<option>.yaml``)."""
    from omegaconf import OmegaConf

    from ..errors import ConfigError

    path = CONF_DIR / group / f"{option}.yaml"
    if not path.is_file():
        options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        raise ConfigError(f"{group}={option} is not an option of {group}: one of {', '.join(options)}")
    return OmegaConf.to_container(OmegaConf.load(path))

