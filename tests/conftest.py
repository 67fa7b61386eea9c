import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("WEAKSEG_SHARED_DATA", REPO.parent / "shared" / "data"))
HIPPO = SHARED_DATA / "Task04_Hippocampus"
CONFIGS = REPO / "bundle" / "configs"


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not found at {path} (expected ../shared/data beside the repository)")
    return path


@pytest.fixture(scope="session")
def hippo_dir() -> Path:
    return require(HIPPO / "dataset.json").parent


COVID = SHARED_DATA / "COVID-QU-Ex_infection_sample"


@pytest.fixture(scope="session")
def covid_dir() -> Path:
    return require(COVID / "Infection Segmentation Data")


SUNNYBROOK = SHARED_DATA / "Sunnybrook_SCD_5patients"


@pytest.fixture(scope="session")
def sunnybrook_dir() -> Path:
    return require(SUNNYBROOK / "link.csv").parent


def small_msd_copy(root: Path, num_cases: int = 16) -> Path:
    """An MSD-layout folder of the first ``num_cases`` real hippocampus cases (links to the files, so that files can
    be deleted from the copy)."""
    import json

    desc = json.loads((HIPPO / "dataset.json").read_text())
    cases = sorted(desc["training"], key=lambda c: c["image"])[:num_cases]
    for sub in ("imagesTr", "labelsTr"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for c in cases:
        for k in ("image", "label"):
            dst = root / c[k]
            if not dst.exists():
                dst.symlink_to((HIPPO / c[k]).resolve())
    (root / "dataset.json").write_text(json.dumps(dict(desc, training=cases, test=[], numTraining=len(cases))))
    return root


@pytest.fixture(scope="session")
def small_hippo(tmp_path_factory, hippo_dir) -> Path:
    """16 real hippocampus cases in MSD layout (11 train / 2 val / 3 test with the bundle's split)."""
    return small_msd_copy(tmp_path_factory.mktemp("small_hippo"))
