"""mmmobilemamba: the MobileMamba backbone as an OpenMMLab plugin."""
import os.path as osp
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


class BuildPyWithConfigs(build_py):
    """Ship configs/ and model-index.yml in the package (mmmobilemamba/.mim/, where
    mmmobilemamba.utils.model_index looks when not run from a clone), as OpenMMLab
    packages do, so that mmpretrain.get_model finds our model names after pip install."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the clone itself
            return
        target = osp.join(self.build_lib, 'mmmobilemamba', '.mim')
        shutil.copytree('configs', osp.join(target, 'configs'), dirs_exist_ok=True)
        shutil.copy('model-index.yml', target)


def read_requirements(name: str) -> list:
    with open(f'requirements/{name}.txt') as f:
        return [ln.split('#')[0].strip() for ln in f if ln.split('#')[0].strip()]


setup(
    name='mmmobilemamba',
    version='0.1.0',
    description='MobileMamba lightweight vision backbone for mmpretrain, mmdet and mmseg',
    packages=find_packages(exclude=('tests', 'configs', 'tools')),
    cmdclass={'build_py': BuildPyWithConfigs},
    python_requires='>=3.10',
    install_requires=read_requirements('torch') + read_requirements('runtime'),
    extras_require={
        'tests': read_requirements('tests'),
        'cuda': read_requirements('cuda'),
    },
)
