"""The GPU augmentation against mmpretrain's CPU transforms, on CPU tensors (and CUDA ones
where there is a GPU): each RandAugment op draws its parameter with the transform's own
random calls and changes the pixels as mmcv does; the crop follows Pillow's bicubic resize;
the whole pipeline draws its flips, ops and patches image by image as mmpretrain's CPU
pipeline does, with its probabilities."""
import numpy as np
import pytest
import torch

pytest.importorskip('mmpretrain')
from mmpretrain.registry import TRANSFORMS  # noqa: E402

import mmmobilemamba  # noqa: E402,F401
from mmmobilemamba.models.data_preprocessors.gpu_augment import (  # noqa: E402
    GPUTrainAugment, apply_randaug_op, capacity, draw_randaug_op, erase, group_index,
    resized_crop)
from mmmobilemamba.models.data_preprocessors.resized_crop_triton import (  # noqa: E402
    INTERPRET, resized_crops, triton_resized_crop_available)
from mmmobilemamba.utils.device_copy import views_on_device  # noqa: E402

PAD = [104, 116, 124]  # the recipe's pad_val: the BGR mean, rounded
OPS = [
    dict(type='AutoContrast'), dict(type='Equalize'), dict(type='Invert'),
    dict(type='Rotate', magnitude_range=(0, 30)),
    dict(type='Posterize', magnitude_range=(4, 0)),
    dict(type='Solarize', magnitude_range=(256, 0)),
    dict(type='SolarizeAdd', magnitude_range=(0, 110)),
    dict(type='ColorTransform', magnitude_range=(0, 0.9)),
    dict(type='Contrast', magnitude_range=(0, 0.9)),
    dict(type='Brightness', magnitude_range=(0, 0.9)),
    dict(type='Sharpness', magnitude_range=(0, 0.9)),
    dict(type='Shear', magnitude_range=(0, 0.3), direction='horizontal'),
    dict(type='Shear', magnitude_range=(0, 0.3), direction='vertical'),
    dict(type='Translate', magnitude_range=(0, 0.45), direction='horizontal'),
    dict(type='Translate', magnitude_range=(0, 0.45), direction='vertical'),
]
# exact: lookups and comparisons; blends: float rounding at .5; warps: cv2 quantises the
# source coordinates to 1/32 pixel and its bicubic weights to 1/1024
EXACT = {'AutoContrast', 'Equalize', 'Invert', 'Posterize', 'Solarize', 'SolarizeAdd'}
WARPS = {'Rotate', 'Shear', 'Translate'}


def photo(seed: int, h: int = 96, w: int = 128) -> np.ndarray:
    """A uint8 HWC BGR image with smooth structure and noise, as photographs have."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (h // 8 + 2, w // 8 + 2, 3))
    yy = np.linspace(0, coarse.shape[0] - 1.001, h)
    xx = np.linspace(0, coarse.shape[1] - 1.001, w)
    y0, x0 = yy.astype(int), xx.astype(int)
    img = coarse[y0][:, x0] * 0.7 + coarse[y0 + 1][:, x0 + 1] * 0.3
    return np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)


def build(op_cfg: dict):
    cfg = dict(op_cfg, prob=0.5)
    if 'magnitude_range' in cfg:
        cfg.update(magnitude_level=9, magnitude_std=0.5, total_level=10)
    if cfg['type'] in WARPS:
        cfg.update(pad_val=PAD, interpolation='bicubic')
    return TRANSFORMS.build(cfg)


DEVICES = ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason='needs a CUDA GPU'))]


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('op_cfg', OPS, ids=lambda c: c['type'] + c.get('direction', '')[:1])
def test_randaug_op_draws_and_changes_pixels_as_mmpretrain(op_cfg, device):
    op = build(op_cfg)
    applied = 0
    for seed in range(12):
        img = photo(seed)
        np.random.seed(seed)
        value = draw_randaug_op(op)
        np.random.seed(seed)
        theirs = op.transform(dict(img=img.copy()))['img']
        if value is None:  # the op skipped the image: so did mmpretrain's
            assert np.array_equal(theirs, img)
            continue
        applied += 1
        batch = torch.from_numpy(img).permute(2, 0, 1)[None].contiguous().to(device)
        ours = apply_randaug_op(op, batch, torch.tensor([value]))[0].permute(1, 2, 0).cpu()
        ours = ours.numpy()
        diff = np.abs(ours.astype(int) - theirs.astype(int))
        name = op_cfg['type']
        if name in EXACT:
            assert diff.max() == 0, (name, value)
        elif name in WARPS:
            inner = diff[3:-3, 3:-3]
            assert inner.mean() < 0.6 and np.mean(inner > 2) < 0.01, (name, value, inner.mean())
        elif name == 'Sharpness':  # cv2.filter2D rounds its 1/13 sums by its SIMD path:
            # one level off in 2.9% of the pixels with the H200 host's OpenCV, < 2% here
            assert diff.max() <= 1 and np.mean(diff > 0) < 0.05, (name, value)
        else:
            assert diff.max() <= 1 and np.mean(diff > 0) < 0.02, (name, value)
    assert 2 <= applied <= 10  # prob 0.5 over 12 images


# (top, left, h, w) in a 300 x 400 image, to 224 x 224: both axes shrink, both grow, and
# the two mixed cases
BOXES = [(10, 20, 200, 260), (0, 0, 120, 100), (5, 7, 290, 150), (30, 5, 180, 390)]


def pillow_crop(img: np.ndarray, box, size=(224, 224), passes: bool = False) -> np.ndarray:
    """Pillow's bicubic resize of the crop (mmcv's 'pillow' backend); with ``passes``, as two
    single-axis resizes, horizontal then vertical: Pillow's C resampler, whatever order its
    ``Image.resize`` picks (Pillow 13 runs the vertical pass first when only the width
    grows)."""
    import mmcv
    top, left, h, w = box
    crop = img[top:top + h, left:left + w]
    steps = [(size[1], h), size[::-1]] if passes else [size[::-1]]
    for step in steps:
        crop = mmcv.imresize(crop, step, interpolation='bicubic', backend='pillow')
    return crop.astype(int)


@pytest.mark.parametrize('device', DEVICES)
def test_resized_crop_follows_pillows_bicubic(device):
    """The CPU path: torch's float resize, within one level of Pillow's fixed point."""
    img = photo(3, 300, 400)
    for box in BOXES:
        ours = resized_crop(torch.from_numpy(img).permute(2, 0, 1).to(device), box, (224, 224))
        diff = np.abs(ours.permute(1, 2, 0).cpu().numpy().astype(int)
                      - pillow_crop(img, box, passes=True))
        assert diff.max() <= 1 and diff.mean() < 0.1, (box, diff.mean())


@pytest.mark.skipif(not (torch.cuda.is_available() or INTERPRET),
                    reason='the Triton crop needs a CUDA GPU (or TRITON_INTERPRET=1)')
def test_batched_crop_gives_pillows_pixels():
    """The batch's crop kernel, on images of different sizes: Pillow's resampler's pixels
    exactly (its windows, its 22-bit coefficients, horizontal pass first), and so
    ``Image.resize``'s where both axes shrink or both grow."""
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    shapes = [(300, 400)] * len(BOXES) + [(57, 33), (33, 57), (224, 224)]
    boxes = BOXES + [(0, 0, 57, 33), (3, 5, 20, 40), (0, 0, 224, 224)]
    images = [photo(i, h, w) for i, (h, w) in enumerate(shapes)]
    batch = resized_crops([torch.from_numpy(img).permute(2, 0, 1).contiguous().to(device)
                           for img in images], boxes, (224, 224))
    assert batch.shape == (len(images), 3, 224, 224) and batch.dtype == torch.uint8
    for ours, img, box in zip(batch, images, boxes):
        ours = ours.permute(1, 2, 0).cpu().numpy()
        assert np.array_equal(ours, pillow_crop(img, box, passes=True)), box
        if (box[2] > 224) == (box[3] > 224):  # one order only
            assert np.array_equal(ours, pillow_crop(img, box)), box
    flat = torch.cat([torch.from_numpy(img).permute(2, 0, 1).reshape(-1) for img in images])
    views = [v.view(3, *img.shape[:2]) for v, img in zip(  # one storage: read in place
        flat.to(device).split([img.size for img in images]), images)]
    assert torch.equal(resized_crops(views, boxes, (224, 224)), batch)
    # the workers' layout: each decoder's HWC image viewed as CHW, in place
    flat = torch.cat([torch.from_numpy(img).reshape(-1) for img in images]).to(device)
    hwc = [v.view(img.shape).permute(2, 0, 1) for v, img in zip(
        flat.split([img.size for img in images]), images)]
    assert torch.equal(resized_crops(hwc, boxes, (224, 224)), batch)
    with pytest.raises(ValueError, match='outside the 57x33 image'):
        resized_crops([torch.zeros(3, 57, 33, dtype=torch.uint8, device=device)],
                      [(0, 0, 58, 33)], (224, 224))


@pytest.mark.parametrize('along_rows', [True, False])
def test_crop_kernel_compiles_for_hopper_without_a_gpu(along_rows):
    """Triton's compiler (not its interpreter, which is laxer, e.g. about globals) builds
    both passes of the crop for sm_90, so a kernel error shows here, not first on a GPU."""
    triton = pytest.importorskip('triton')
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from mmmobilemamba.models.data_preprocessors import resized_crop_triton
    signature = dict(src='*u8', dst='*u8', meta='*i64', taps='i32', ALONG_ROWS='constexpr',
                     BLOCK_X='constexpr', BLOCK_Y='constexpr')
    source = ASTSource(fn=resized_crop_triton._pass_kernel, signature=signature,
                       constexprs=dict(ALONG_ROWS=along_rows, BLOCK_X=256, BLOCK_Y=8))
    kernel = triton.compile(source, target=GPUTarget('cuda', 90, 32))
    assert '.target sm_90' in kernel.asm['ptx'] and kernel.asm['cubin']


@pytest.mark.parametrize('device', DEVICES)
def test_views_of_one_storage_travel_as_one_copy(device):
    images = [torch.randint(0, 256, (3, h, 20), dtype=torch.uint8) for h in (5, 9, 7)]
    flat = torch.cat([img.reshape(-1) for img in images])  # as one_storage_collate packs
    views = [v.view(img.shape) for v, img in zip(flat.split([i.numel() for i in images]),
                                                  images)]
    other = torch.rand(2, 3, dtype=torch.float64).t()  # a storage of its own, strided
    moved = views_on_device(views + [other], torch.device(device))
    for a, b in zip(views + [other], moved):
        assert b.device.type == device and b.dtype == a.dtype and torch.equal(a, b.cpu())
        assert b.stride() == a.stride()
    assert len({b.untyped_storage().data_ptr() for b in moved[:3]}) == 1


def test_erase_fills_exactly_the_drawn_rectangles():
    img = torch.full((3, 3, 20, 30), 7, dtype=torch.uint8)
    rects = torch.tensor([[2, 3, 5, 4], [0, 0, 0, 0], [10, 20, 10, 10]])
    color = torch.tensor([200., 100., 50.])
    out = erase(img, rects, 'const', color, None)
    expected = img.clone()
    for i, (top, left, h, w) in enumerate(rects.tolist()):
        expected[i, :, top:top + h, left:left + w] = color.to(torch.uint8).view(3, 1, 1)
    assert torch.equal(out, expected)
    torch.manual_seed(0)
    noisy = erase(torch.zeros(1, 3, 100, 100, dtype=torch.uint8), torch.tensor([[0, 0, 100, 80]]),
                  'rand', color, torch.tensor([10., 10., 10.]))
    patch = noisy[0, :, :, :80].float()
    assert torch.all(noisy[0, :, :, 80:] == 0)
    # normal(colour, 10) truncated (-0.5 on average); 4 standard errors over 8,000 pixels
    assert torch.allclose(patch.mean((1, 2)), color - 0.5, atol=0.45)
    assert torch.allclose(patch.std((1, 2)), torch.full((3, ), 10.), atol=0.32)


def cpu_pipeline_draws(crop, flip, randaug, erasing, img: torch.Tensor, size) -> tuple:
    """One image's draws with the calls, in the order, of mmpretrain's CPU pipeline."""
    box = crop.rand_crop_params(img.permute(1, 2, 0).numpy())
    flipped = flip._choose_direction() == 'horizontal'
    chosen = randaug.random_policy_indices()
    values = [draw_randaug_op(randaug.transforms[j]) for j in chosen]
    rect = erasing.random_patch(*size) if not erasing.random_disable() else None
    return box, flipped, chosen, values, rect


def test_group_index_lists_each_member_once_and_fills_with_others():
    groups = [np.array([3, 7]), np.array([], dtype=np.int64), np.arange(0, 40, 4)]
    member = np.zeros((3, 40), bool)
    for row, g in zip(member, groups):
        row[g] = True
    table = group_index(member)
    assert table.shape == (3, 16)  # the largest group, 10, rounded up to a power of two
    for row, members in zip(table.tolist(), groups):
        kept = [i for i in row if i >= 0]
        fill = [-1 - i for i in row if i < 0]
        assert kept == members.tolist() and len(set(fill) | set(kept)) == 16
        assert not set(fill) & set(members.tolist()) and all(0 <= i < 40 for i in fill)
    assert capacity(0, 40) == 8 and capacity(9, 40) == 16 and capacity(33, 40) == 40
    assert capacity(3, 4) == 4


# every op of the recipe; two ops only, so that each group holds many images
POLICY_SETS = {'all': OPS, 'crowded': [OPS[1], OPS[3]]}


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('policy_set', sorted(POLICY_SETS))
def test_batch_applies_each_images_own_draws(device, policy_set):
    """Each image draws as the CPU pipeline draws it (the same calls in the same order),
    and the batch (crop, flip, each RandAugment op on its group, erasing) gives each image
    what its draws, applied to it alone, give."""
    policies = [dict(type=c['type'], **{k: v for k, v in c.items() if k != 'type'})
                for c in POLICY_SETS[policy_set]]
    hparams = dict(pad_val=PAD, interpolation='bicubic')
    pipeline = [dict(type='RandomResizedCrop', scale=48, backend='pillow',
                     interpolation='bicubic'),
                dict(type='RandomFlip', prob=0.5, direction='horizontal'),
                dict(type='RandAugment', policies=policies, num_policies=2, total_level=10,
                     magnitude_level=9, magnitude_std=0.5, hparams=hparams),
                dict(type='RandomErasing', erase_prob=0.5, mode='const', min_area_ratio=0.1,
                     max_area_ratio=0.3, fill_color=PAD)]
    augment = GPUTrainAugment(pipeline)
    images = [torch.from_numpy(photo(s, 60 + 7 * (s % 16), 80 - 3 * (s % 10))).permute(2, 0, 1)
              for s in range(32)]  # HWC memory, as the workers send it
    np.random.seed(5)
    rows = torch.stack([augment.draw(*img.shape[1:]) for img in images])
    after = np.random.get_state()[1:3]
    batch = augment([img.to(device) for img in images], rows)
    batch = augment([img.to(device) for img in images], rows)  # CUDA: the captured graph
    np.random.seed(5)
    draws = [cpu_pipeline_draws(*augment.transforms, img, (48, 48)) for img in images]
    state = np.random.get_state()[1:3]
    assert np.array_equal(state[0], after[0]) and state[1] == after[1]  # no draw more or less
    for i, (img, (box, flipped, chosen, values, rect)) in enumerate(zip(images, draws)):
        img = img.to(device)
        want = (resized_crops([img], [box], (48, 48))  # the batch's crop
                if triton_resized_crop_available(img)
                else resized_crop(img, box, (48, 48))[None])
        want = want.flip(-1) if flipped else want
        for j, value in zip(chosen, values):
            if value is not None:
                want = apply_randaug_op(augment.transforms[2].transforms[j], want,
                                        torch.tensor([value], dtype=torch.float64))
        if rect is not None:
            top, left, h, w = rect
            want[..., top:top + h, left:left + w] = torch.tensor(PAD).view(3, 1, 1).to(device)
        assert torch.equal(batch[i], want[0]), i
    assert 0 < sum(d[1] for d in draws) < 32 and 0 < sum(d[4] is not None for d in draws) < 32
    applied = [j for d in draws for j, v in zip(d[2], d[3]) if v is not None]
    if policy_set == 'all':
        assert len(set(applied)) >= 10 and {3, 11, 13} & set(applied)  # warps among them
    else:  # groups larger than the smallest capacity, 8
        op_index, warp_index = augment.groups(rows[:, 4:])
        assert op_index.shape[1] > 8 and warp_index.shape[1] > 8


def test_the_workers_draws_use_the_cpu_pipelines_random_stream(tmp_path):
    """mmpretrain's own CPU pipeline over the same images from the same seed draws the
    same number of values from NumPy's generator (its erasing noise aside: 'const' here),
    so a worker's stream after N images is where the CPU pipeline's would be."""
    from mmengine.registry import DefaultScope
    pipeline = [dict(type='RandomResizedCrop', scale=48),
                dict(type='RandomFlip', prob=0.5, direction='horizontal'),
                dict(type='RandAugment', policies='timm_increasing', num_policies=2,
                     total_level=10, magnitude_level=9, magnitude_std=0.5,
                     hparams=dict(pad_val=PAD, interpolation='bicubic')),
                dict(type='RandomErasing', erase_prob=0.5, mode='const', fill_color=PAD)]
    augment = GPUTrainAugment(pipeline)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        cpu = [TRANSFORMS.build(dict(t)) for t in pipeline]
    images = [photo(s, 60 + 7 * s, 80) for s in range(20)]
    np.random.seed(11)
    for img in images:
        augment.draw(*img.shape[:2])
    ours = np.random.get_state()[1:3]
    np.random.seed(11)
    for img in images:
        results = dict(img=img.copy(), img_shape=img.shape[:2], ori_shape=img.shape[:2])
        for t in cpu:
            results = t(results)
    theirs = np.random.get_state()[1:3]
    assert np.array_equal(theirs[0], ours[0]) and theirs[1] == ours[1]


@pytest.fixture(scope='module')
def recipe_augment():
    from mmengine.config import Config
    cfg = Config.fromfile('configs/classification/mobilemamba_s6_8xb128_in1k.py')
    pipeline = [t.to_dict() if hasattr(t, 'to_dict') else dict(t)
                for t in cfg.train_dataloader.dataset.pipeline]
    assert [t['type'] for t in pipeline] == [
        'LoadImageFromFile', 'RandomResizedCrop', 'RandomFlip', 'RandAugment',
        'RandomErasing', 'PackInputs']
    return GPUTrainAugment(pipeline[1:-1])


def test_draws_bypass_mmcvs_cache_wrapper_with_the_same_results():
    """Our transforms call their random methods directly (the wrapper copies itself at
    every access), and draw exactly what freshly built, wrapped transforms draw."""
    import inspect

    from mmcv.transforms.utils import cache_randomness
    from mmengine.registry import DefaultScope
    pipeline = [dict(type='RandomResizedCrop', scale=224), dict(type='RandomFlip', prob=0.5),
                dict(type='RandAugment', policies='timm_increasing', num_policies=2,
                     total_level=10, magnitude_level=9, magnitude_std=0.5,
                     hparams=dict(pad_val=PAD, interpolation='bicubic')),
                dict(type='RandomErasing', erase_prob=0.25, mode='rand')]
    ours = GPUTrainAugment(pipeline).transforms
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        theirs = [TRANSFORMS.build(dict(t)) for t in pipeline]
    assert isinstance(inspect.getattr_static(theirs[0], 'rand_crop_params'), cache_randomness)
    assert not isinstance(inspect.getattr_static(ours[0], 'rand_crop_params'), cache_randomness)
    assert not isinstance(inspect.getattr_static(ours[2].transforms[3], 'random_magnitude'),
                          cache_randomness)

    def draws(crop, flip, randaug, erasing):
        np.random.seed(3)
        out = []
        for _ in range(50):
            chosen = randaug.random_policy_indices()
            out += [crop.rand_crop_params(np.empty((375, 500, 0))), flip._choose_direction(),
                    chosen, [draw_randaug_op(randaug.transforms[j]) for j in chosen],
                    erasing.random_disable(), erasing.random_patch(224, 224)]
        return out

    assert draws(*ours) == draws(*theirs)


def test_recipe_draws_with_mmpretrains_probabilities(recipe_augment):
    """Over 4,000 images' draws: flips 1/2, each of the 15 ops applied in 1/30 of the slots
    (chosen 1/15, then its prob 1/2), erasing 1/4, crop area 8-100 % and patch area 2-33 %."""
    np.random.seed(0)
    n = 4000
    rows = torch.stack([recipe_augment.draw(375, 500) for _ in range(n)]).numpy()
    assert rows.shape == (n, recipe_augment.width) == (n, 4 + 2 + 2 * 11 + 4)
    flips, slots, patches = rows[:, 4], rows[:, [6, 17]].ravel(), rows[:, 28:32]
    counts = np.bincount(slots[slots >= 0].astype(int), minlength=15) / len(slots)
    areas = rows[:, 2] * rows[:, 3] / (375 * 500)
    erased = patches[:, 2] > 0
    patch_areas = patches[erased, 2] * patches[erased, 3] / 224**2
    sigma = 0.5 / np.sqrt(n)  # the binomial standard error at p = 1/2
    assert abs(flips.mean() - 0.5) < 4 * sigma and abs((slots < 0).mean() - 0.5) < 3 * sigma
    assert abs(erased.mean() - 0.25) < 4 * sigma and not rows[:, 5].any()  # no vertical flip
    assert np.all(np.abs(counts - 1 / 30) < 4 * np.sqrt(1 / 30 * 29 / 30 / len(slots)))
    # uniform in 8-100 %, less the boxes that do not fit the 4:3 image: mean below 0.54
    assert areas.min() >= 0.07 and areas.max() <= 1.0 and 0.40 < areas.mean() < 0.47
    assert patch_areas.min() >= 0.015 and patch_areas.max() <= 0.34


def test_recipe_batch_has_the_crop_size_and_changes_the_images(recipe_augment):
    images = [torch.from_numpy(photo(s, h, w)).permute(2, 0, 1).contiguous()
              for s, (h, w) in enumerate([(300, 400), (400, 520), (350, 350), (320, 480)] * 4)]
    np.random.seed(1)
    rows = torch.stack([recipe_augment.draw(*img.shape[1:]) for img in images])
    generator = torch.Generator().manual_seed(1)  # the erased patches' noise
    batch = recipe_augment(images, rows, generator)
    assert batch.shape == (16, 3, 224, 224) and batch.dtype == torch.uint8
    assert torch.equal(recipe_augment(images, rows, generator.manual_seed(1)), batch)
    np.random.seed(2)
    rows = torch.stack([recipe_augment.draw(*img.shape[1:]) for img in images])
    assert (recipe_augment(images, rows) != batch).float().mean() > 0.5
    with pytest.raises(ValueError, match=r'16 images need \(16, 32\) parameters'):
        recipe_augment(images, rows[:, :30])


def test_unsupported_transforms_are_named():
    with pytest.raises(ValueError, match='Keep this pipeline on the CPU'):
        GPUTrainAugment([dict(type='RandomResizedCrop', scale=224),
                         dict(type='ColorJitter', brightness=0.4)])
    with pytest.raises(ValueError, match='has no GPU version'):
        GPUTrainAugment([dict(type='RandomResizedCrop', scale=224),
                         dict(type='RandAugment', policies=[dict(type='Cutout', shape=8)],
                              num_policies=1, magnitude_level=9)])


def test_builds_in_mmpretrains_scope_whatever_the_current_one():
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmseg'):  # e.g. a segmentation run's
        augment = GPUTrainAugment([dict(type='RandomResizedCrop', scale=32),
                                   dict(type='RandomFlip', prob=0.5)])
    assert [type(t).__name__ for t in augment.transforms] == ['RandomResizedCrop',
                                                              'RandomFlip']
