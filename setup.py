"""pip install path for active_o3_ros (the ROS/colcon path is CMakeLists.txt + package.xml).

WHY the distribution is called ``active-o3-ros-py``: rosidl registers an egg-info named
``active_o3_ros`` for the generated messages; a pip distribution of the same name would be seen
as an older install of itself and pip would delete the generated ``active_o3_ros.msg``.

WHY ``active_o3_training``: the training code lives in ``training/`` but a top-level package
called ``training`` would clash with anything else in site-packages, so it is installed under a
project-specific import name.

Exact, known-good versions live in ``constraints.txt``; here only loose lower bounds, so the
package composes with other environments (e.g. a ROS distro's own Python packages).
"""
from __future__ import annotations

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
PKG = 'active_o3_ros'


def _files(pattern: str) -> list[str]:
    """Repo-relative files matching ``pattern`` (setuptools wants relative paths)."""
    return sorted(p for p in glob(pattern, root_dir=HERE, recursive=True)
                  if (HERE / p).is_file() and '__pycache__' not in p)


def _readme() -> str:
    readme = HERE / 'README.md'
    return readme.read_text(encoding='utf-8') if readme.is_file() else ''


# Installed into <prefix>/share so ament_index / get_package_share_directory() finds launch and
# config files without colcon (same layout as the CMake install).
DATA_FILES = [
    ('share/ament_index/resource_index/packages', ['resource/' + PKG]),
    (f'share/{PKG}', ['package.xml']),
    (f'share/{PKG}/launch', _files('launch/*.py') + _files('launch/*.xml') + _files('launch/*.yaml')),
    (f'share/{PKG}/config', _files('config/*')),
]
DATA_FILES = [(dest, srcs) for dest, srcs in DATA_FILES if srcs]

# deepspeed: the ZeRO-3 accelerate configs in training/configs/ need it (a source distribution;
# `pip install .[train] -c constraints.txt` builds it with its ops compiled on first use).
TRAIN = ['trl>=1.0', 'peft>=0.15', 'datasets>=3.0', 'accelerate>=1.0', 'pycocotools>=2.0.8',
         'matplotlib>=3.8', 'deepspeed>=0.15', 'onnx>=1.16']
TEXT = ['rapidocr>=3.0', 'onnxruntime>=1.18']
SAM = ['segment-anything>=1.0']
# ROS 2 Kilted from PyPI wheels (a sourced ROS install works too; then skip this extra).
ROS = ['ros-kilted-rclpy[fastrtps]>=9.1', 'ros-kilted-std-msgs', 'ros-kilted-sensor-msgs',
       'ros-kilted-lifecycle-msgs', 'ros-kilted-diagnostic-msgs', 'rosbags>=0.10']
DEV = ['pytest>=8', 'pytest-timeout>=2.3', 'hypothesis>=6.100']

setup(
    name='active-o3-ros-py',
    version='0.1.0',
    description='ACTIVE-o3 active perception (sense -> zoom -> detect) with a ROS 2 node',
    long_description=_readme(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=find_packages(include=[PKG, f'{PKG}.*'], exclude=[f'{PKG}.msg', f'{PKG}.msg.*'])
    + ['active_o3_training'] + [f'active_o3_training.{p}' for p in find_packages('training')],
    package_dir={'active_o3_training': 'training'},
    package_data={
        PKG: ['data/*', 'data/**/*'],
        'active_o3_training': ['configs/*', 'configs/**/*'],
    },
    include_package_data=False,
    data_files=DATA_FILES,
    install_requires=[
        'numpy>=1.26',
        'pillow>=10',
        'opencv-python-headless>=4.9',
        'PyYAML>=6',
        'tqdm>=4.66',
        'safetensors>=0.4',
        # torch: on CPU machines install the CPU wheel first (see constraints.txt); an unpinned
        # torch from the default index pulls several GB of CUDA wheels.
        'torch>=2.4',
        'transformers>=4.50',
    ],
    extras_require={
        'train': TRAIN,
        'text': TEXT,
        'sam': SAM,
        'ros': ROS,
        'vllm': ['vllm>=0.10'],
        'dev': DEV + TRAIN + TEXT + SAM,
    },
    entry_points={
        'console_scripts': [
            'active-o3 = active_o3_ros.cli:main',
            'active-o3-node = active_o3_ros.ros.node:main',
            'active-o3-camera = active_o3_ros.ros.camera_source:main',
            'active-o3-bag = active_o3_ros.ros.bags:main',
            'active-o3-listen = active_o3_ros.ros.listener:main',
            'active-o3-demo = active_o3_ros.ros.demo:main',
            'active-o3-train = active_o3_training.cli:main',
            'active-o3-eval = active_o3_training.evaluate:main',
        ],
    },
    zip_safe=False,
)
