"""mmmobilemamba: the MobileMamba backbone as an OpenMMLab plugin."""
from setuptools import find_packages, setup


def read_requirements(name: str) -> list:
    with open(f'requirements/{name}.txt') as f:
        return [ln.split('#')[0].strip() for ln in f if ln.split('#')[0].strip()]


setup(
    name='mmmobilemamba',
    version='0.1.0',
    description='MobileMamba lightweight vision backbone for mmpretrain, mmdet and mmseg',
    packages=find_packages(exclude=('tests', 'configs', 'tools')),
    python_requires='>=3.10',
    install_requires=read_requirements('torch') + read_requirements('runtime'),
    extras_require={
        'tests': read_requirements('tests'),
        'cuda': read_requirements('cuda'),
    },
)
