from weakseg.data.msd import (
    CheckedDataset,
    MSDSource,
    files_datalist,
    load_msd_datalist,
    make_synthetic_msd,
    split_by_volume,
    telescopic_subset,
    volumes_to_slices,
)

__all__ = [
    "CheckedDataset",
    "MSDSource",
    "files_datalist",
    "load_msd_datalist",
    "make_synthetic_msd",
    "split_by_volume",
    "telescopic_subset",
    "volumes_to_slices",
]
