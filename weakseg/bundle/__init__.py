"""Where the MONAI bundle of this package lies, in a source checkout and in an installed wheel.

The bundle folder (``configs/``, ``docs/``, ``LICENSE``) is ``bundle/`` in the source tree; the wheel ships a copy
inside this package. :func:`bundle_dir` finds either, so an installed package runs its bundle from any folder::

    B=$(python -m weakseg.bundle)
    python -m monai.bundle run training --config_file $B/configs/train.json --bundle_root . --dataset_dir ...
    python -m monai.bundle run --config_file $B/configs/inference.json --bundle_root . --input_dir ...

``python -m weakseg.bundle copy DEST`` copies the bundle folder to ``DEST`` (to edit its configs).
"""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["bundle_dir", "copy_bundle"]

_PARTS = ("configs", "docs", "LICENSE")


def _is_bundle(folder: Path) -> bool:
    return (folder / "configs" / "train.json").is_file() and (folder / "configs" / "metadata.json").is_file()


def bundle_dir() -> Path:
    """The bundle folder: the copy installed with the package (wheel), else ``bundle/`` of the source tree
    (editable install). Raises ``FileNotFoundError`` saying where it looked."""
    here = Path(__file__).resolve().parent
    source = here.parents[1] / "bundle"
    for folder in (here, source):
        if _is_bundle(folder):
            return folder
    raise FileNotFoundError(f"no MONAI bundle (configs/train.json, configs/metadata.json) in {here} (installed "
                            f"package) or {source} (source tree); reinstall monai-weakseg.")


def copy_bundle(dest: str | Path) -> Path:
    """Copy the bundle folder (configs, docs, LICENSE) to ``dest``, which must not exist yet. Returns ``dest``."""
    dest, src = Path(dest), bundle_dir()
    if dest.exists():
        raise FileExistsError(f"{dest} exists; choose a new folder for the bundle copy.")
    dest.mkdir(parents=True)
    for part in _PARTS:
        s = src / part
        if s.is_dir():
            shutil.copytree(s, dest / part)
        elif s.is_file():
            shutil.copy2(s, dest / part)
    return dest
