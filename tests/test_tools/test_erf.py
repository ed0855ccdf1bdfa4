"""tools/analysis/visualize_erf.py: one PNG (+ raw .npy) per stage for S6 at 224, and maps
that behave as the architecture says they must."""
import os.path as osp

import numpy as np
import pytest
from PIL import Image

# patch_embed: four 3x3 stride-2 convs, so its theoretical receptive field is
# 1 + 2 * (1 + 2 + 4 + 8) = 31 pixels
PATCH_EMBED_RF = 31


@pytest.fixture(scope='module')
def tool(import_tool):
    """The tool as a module, to call its ``main`` and helpers in-process."""
    return import_tool('tools/analysis/visualize_erf.py')


@pytest.fixture(scope='module')
def s6(repo_root) -> str:
    """The S6 classification config (224 px)."""
    return osp.join(repo_root, 'configs', 'classification', 'mobilemamba_s6_8xb128_in1k.py')


pytestmark = pytest.mark.usefixtures('one_thread')


def support(raw: np.ndarray) -> tuple:
    """Height and width of the bounding box of the non-zero gradient."""
    ys, xs = np.nonzero(raw)
    return ys.max() - ys.min() + 1, xs.max() - xs.min() + 1


@pytest.fixture(scope='module')
def s6_run(tmp_path_factory, tool, s6):
    """The tool on three random 64 x 80 images, all four stages and the grid."""
    out = tmp_path_factory.mktemp('erf')
    img_dir = out / 'images'
    img_dir.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(
            img_dir / f'img_{i}.png')
    maps = tool.main([s6, '--images', str(img_dir), '--num-images', '3', '--out-dir', str(out),
                      '--grid'])
    return out, maps


def test_one_png_and_npy_per_stage(s6_run):
    out, maps = s6_run
    assert sorted(maps) == [0, 1, 2, 3]
    for stage in range(4):
        with Image.open(out / f'erf_stage{stage}.png') as img:
            assert img.width >= 250 and img.height >= 250
        assert (out / f'erf_stage{stage}.png').stat().st_size > 5_000
        raw = np.load(out / f'erf_stage{stage}.npy')
        assert raw.shape == (224, 224)  # S6's default resolution
        np.testing.assert_array_equal(raw, maps[stage])
        assert np.isfinite(raw).all() and raw.min() >= 0 and raw.max() > 0
    with Image.open(out / 'erf_grid.png') as grid:
        assert grid.width > 2.5 * grid.height  # four maps side by side
    assert (out / 'erf_grid.png').stat().st_size < 300_000


def test_erf_widens_with_depth(s6_run, tool):
    _, maps = s6_run
    # patch_embed reaches exactly its 31-pixel theoretical receptive field, no further
    assert max(support(maps[0])) <= PATCH_EMBED_RF
    sides = [tool.centre_square_side(maps[s], 0.5) for s in range(4)]
    assert sides[3] > sides[2] > sides[1], sides
    # the heat maps' high-contribution area grows as well
    area = [(tool.normalise(maps[s]) > 0.2).mean() for s in range(4)]
    assert area[3] > 3 * area[1], area
    # blocks3 (stride 64) draws on the whole 224 x 224 image
    assert support(maps[3]) == (224, 224)


def test_blocks1_reaches_beyond_patch_embed_once_its_branches_are_active(tmp_path, tool, s6):
    """As built, each block's residual branches end in a BN with weight 0 (an identity
    block); with BN weights 1 the MRFFI branches of blocks1 see the whole image."""
    maps = tool.main([s6, '--stages', '0', '1', '--num-images', '1', '--bn-weight', '1',
                      '--out-dir', str(tmp_path)])
    assert max(support(maps[0])) <= PATCH_EMBED_RF
    assert support(maps[1]) == (224, 224)
    assert sorted(p.name for p in tmp_path.glob('*.png')) == ['erf_stage0.png',
                                                              'erf_stage1.png']


def test_bad_arguments_are_named(tmp_path, tool, s6):
    with pytest.raises(FileNotFoundError, match='not a folder'):
        tool.main([s6, '--images', str(tmp_path / 'nope'), '--out-dir', str(tmp_path)])
    with pytest.raises(SystemExit):
        tool.parse_args([s6, 'ckpt.pth', '--bn-weight', '1'])
