"""Messages that fix a mistyped command line, instead of Hydra's generic ones.

``python run.py data.batch_size=8`` makes Hydra say "Could not override 'data.batch_size'. To append
to your config use +data.batch_size=8" — advice that then fails later, or silently adds a key nothing
reads. Here the same mistake prints the nearest valid key (``data.batch_size_per_device``) and the
keys that exist; a ``lightning.Trainer`` argument the trainer config does not list is explained
(``+trainer.accumulate_grad_batches=2`` is right there); an unknown config-group option lists the
options. ``run.py`` calls :func:`explain` for Hydra's composition errors.
"""

from __future__ import annotations

import difflib
import inspect
import re

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from . import CONF_DIR


def _compose(overrides: list[str]) -> DictConfig | None:
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
            return compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException):  # the overrides do not compose: no suggestion
        return None
    finally:
        GlobalHydra.instance().clear()


def _first_choice(override: str) -> str:
    """A sweep (``norm=bn,gn``) composes as its first value; the keys are the same."""
    key, value = override.split("=", 1)
    return f"{key}={value.split(',')[0]}" if "," in value and "[" not in value else override


def _trainer_arguments() -> set[str]:
    import lightning

    return set(inspect.signature(lightning.Trainer.__init__).parameters) - {"self"}


# keys that moved: what to type instead
MOVED_KEYS = {"model.gn_groups": "GN's groups are norm.num_groups (G; null = the model's) or "
                                 "norm.group_size (channels per group)",
              "model.compile": "how the network is computed is runtime.compile",
              "model.channels_last_3d": "how the network is computed is runtime.channels_last_3d"}


def explain_unknown_key(key: str, overrides: list[str]) -> str:
    """``key`` (``data.batch_size``) is not in the composed config: what to type instead."""
    if key in MOVED_KEYS:
        return f"{key} is not a key any more: {MOVED_KEYS[key]}"
    others = [o for o in overrides if not re.match(rf"^{re.escape(key)}=", o)]
    # The config the other overrides make: keys depend on the chosen groups (data=kinetics400, ...).
    cfg = _compose([_first_choice(o) for o in others
                    if "=" in o and not o.split("=")[0].startswith(("+", "~", "hydra."))])
    parent_key, _, leaf = key.rpartition(".")
    node = cfg
    for part in parent_key.split(".") if parent_key and cfg is not None else []:
        node = node.get(part) if isinstance(node, DictConfig) else None
    if parent_key == "trainer" and leaf in _trainer_arguments():
        value = next((o.split("=", 1)[1] for o in overrides if o.startswith(f"{key}=")), "VALUE")
        return (f"trainer.{leaf} is a lightning.Trainer argument that conf/trainer does not list: add it "
                f"with a +, as +trainer.{leaf}={value}")
    if not isinstance(node, DictConfig):
        return f"{key} is not a key of the config"
    keys = sorted(k for k in node.keys() if not str(k).startswith("_"))
    close = difflib.get_close_matches(leaf, keys, n=3, cutoff=0.5)
    where = parent_key or "the top level"
    suggestions = " or ".join(f"{parent_key}.{c}" if parent_key else c for c in close)
    hint = f"did you mean {suggestions}? " if close else ""
    return f"{key} is not a key of {where}: {hint}its keys are {', '.join(keys)}"


def explain(error: Exception, overrides: list[str]) -> str | None:
    """One message for a Hydra composition error, or None to leave it as Hydra says it."""
    text = str(error)
    unknown = (re.search(r"Could not override '([^']+)'", text)
               or re.search(r"Key '([^']+)' is not in struct", text))
    if isinstance(error, ConfigCompositionException) and unknown:
        return explain_unknown_key(unknown.group(1), overrides)
    absent = re.search(r"Error in call to target '([^']+)':\s*ModuleNotFoundError\((.*)", text)
    if absent:  # e.g. logger=wandb without the wandb package
        why = absent.group(2).rstrip(")")[:200]
        return (f"{absent.group(1)} needs a package that is not installed ({why}); the loggers' "
                "packages: pip install -e '.[loggers]'")
    missing = re.search(r"Could not find '([^/']+)/([^']+)'", text)
    if isinstance(error, MissingConfigException) and missing:
        group, option = missing.groups()
        options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        close = difflib.get_close_matches(option, options, n=1, cutoff=0.5)
        hint = f" did you mean {group}={close[0]}?" if close else ""
        return f"{group}={option} is not an option of {group}:{hint} the options are {', '.join(options)}"
    return None
