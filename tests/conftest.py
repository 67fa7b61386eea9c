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
