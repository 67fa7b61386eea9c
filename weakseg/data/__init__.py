from weakseg.data.covid import (
    COVID_CLASSES,
    CovidQUExSource,
    has_foreground,
    load_covid_qu_ex_datalist,
    stratified_split,
)
from weakseg.data.msd import (
    CheckedDataset,
    MSDSource,
    files_datalist,
    load_msd_datalist,
    make_synthetic_msd,
    split_by_volume,
    strip_meta,
    telescopic_subset,
    volumes_to_slices,
)

__all__ = [
    "COVID_CLASSES",
    "CovidQUExSource",
    "has_foreground",
    "load_covid_qu_ex_datalist",
    "stratified_split",
    "CheckedDataset",
    "MSDSource",
    "files_datalist",
    "load_msd_datalist",
    "make_synthetic_msd",
    "split_by_volume",
    "strip_meta",
    "telescopic_subset",
    "volumes_to_slices",
]
