import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

here = os.path.dirname(os.path.abspath(__file__))
readme = os.path.join(here, "README.md")
long_description = open(readme, encoding="utf-8").read() if os.path.exists(readme) else ""



class BuildPyWithBundle(build_py):
    """Ship the MONAI bundle folder (configs, docs, LICENSE) inside the package, at weakseg/bundle/, where
    ``weakseg.bundle.bundle_dir()`` finds it in an installed wheel."""

    def run(self):
        super().run()
        src, dst = os.path.join(here, "bundle"), os.path.join(self.build_lib, "weakseg", "bundle")
        if not os.path.isdir(src) or getattr(self, "editable_mode", False):
            return
        for part in ("configs", "docs"):
            shutil.copytree(os.path.join(src, part), os.path.join(dst, part), dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy2(os.path.join(src, "LICENSE"), os.path.join(dst, "LICENSE"))


setup(
    name="monai-weakseg",
    version="0.4.0",
    description="MONAI components and bundle for segmentation from weak or structured supervision",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["weakseg", "weakseg.*"]),
    cmdclass={"build_py": BuildPyWithBundle},
    package_data={"weakseg.annotations": ["schema.json"]},
    install_requires=[
        "torch>=2.8",
        "monai>=1.6.1,<1.7",
        "pytorch-ignite>=0.5,<0.6",
        "nibabel",
        "numpy",
        "scipy",
        "mlflow>=3.15",
        "pydicom",
        "fire",
        "tqdm",
        "matplotlib",
        "pillow",
        "scikit-image>=0.26",
    ],
    extras_require={
        "onnx": ["onnx", "onnxscript", "onnxruntime"],
        "system": ["psutil"],  # MLflow system metrics (CPU, memory; GPU also needs pynvml)
        "test": ["pytest", "jsonschema", "onnx", "onnxscript", "onnxruntime", "psutil"],
    },
)
