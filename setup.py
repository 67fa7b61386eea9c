from setuptools import find_packages, setup

import os

here = os.path.dirname(os.path.abspath(__file__))
readme = os.path.join(here, "README.md")
long_description = open(readme, encoding="utf-8").read() if os.path.exists(readme) else ""

setup(
    name="monai-weakseg",
    version="0.1.0",
    description="MONAI components and bundle for segmentation from weak or structured supervision",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["weakseg", "weakseg.*"]),
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
        "test": ["pytest", "parameterized", "jsonschema", "onnx", "onnxscript", "onnxruntime"],
    },
)
