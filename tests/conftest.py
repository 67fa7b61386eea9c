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


def generic_2d_folder(root: Path, num_images: int = 36, size: int = 64) -> Path:
    """A dataset in the generic 2D layout made from the real COVID-QU-Ex X-rays: ``images/*.png`` and
    ``masks/*.png`` (lung masks, 0/255), downsampled to ``size`` x ``size``, plus ``labels.json`` naming the
    classes. Natural-sorted COVID-19 images first, then Normal."""
    import json

    from PIL import Image

    base = require(COVID / "Infection Segmentation Data") / "Test"
    files = sorted((base / "COVID-19" / "images").glob("*.png"))[: num_images * 2 // 3]
    files += sorted((base / "Normal" / "images").glob("*.png"))[: num_images - len(files)]
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    for f in files:
        name = f.name.replace(" ", "_").replace("(", "").replace(")", "")
        with Image.open(f) as im:
            im.convert("L").resize((size, size), Image.BILINEAR).save(root / "images" / name)
        with Image.open(f.parent.parent / "lung masks" / f.name) as m:
            m.convert("L").resize((size, size), Image.NEAREST).save(root / "masks" / name)
    (root / "labels.json").write_text(json.dumps({"0": "background", "1": "lung"}))
    return root


@pytest.fixture(scope="session")
def lung_folder(tmp_path_factory) -> Path:
    """36 real chest X-rays with lung masks at 64 x 64 in the generic ``images/`` + ``masks/`` layout."""
    return generic_2d_folder(tmp_path_factory.mktemp("lung_folder"))


def pytest_configure(config):
    config.addinivalue_line("markers", "integration: runs the bundle or a build in a subprocess (slow; in CI too)")
