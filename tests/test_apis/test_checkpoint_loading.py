"""Another variant's checkpoint is refused, naming keys, shapes and both variants, through
every library loader (mmdet's init_detector and tools/test.py, mmseg's init_model,
mmpretrain's get_model, nn.Module.load_state_dict, an EMA copy); the right checkpoint
still loads. Also: ``pretrained=`` from an mmseg base config, and the converter both ways."""
import os.path as osp
import re

import pytest
import torch
from mmengine.model import ExponentialMovingAverage
from mmengine.runner import load_checkpoint, save_checkpoint

from mmmobilemamba.models import MobileMamba
from mmmobilemamba.models.utils import fuse_modules
from mmmobilemamba.utils import CheckpointError, checkpoint_arch, convert_checkpoint

pytestmark = pytest.mark.usefixtures('one_thread')

DET_TOY = osp.join('configs', 'detection', 'retinanet_mobilemamba_b1_toy.py')
SEG_TOY = osp.join('configs', 'segmentation', 'fpn_mobilemamba_b4_toy.py')
CLS_TOY = 'mobilemamba_t2_8xb128_in1k_toy'
KEY = 'backbone.patch_embed.0.c.weight'
# What every refusal of S6 weights by a B1/B4 model says: the first reshaped key with both
# shapes, this model's arch and the checkpoint's, and the fix.
S6_IN_B = (r"backbone\.patch_embed\.0\.c\.weight: checkpoint \(24, 3, 3, 3\) vs model "
           r"\(25, 3, 3, 3\).*This backbone is arch 'b[14]' \(embed_dims \[200, 376, 448\], "
           r"depths \[2, 3, 2\]\)\. The checkpoint holds a MobileMamba with embed_dims "
           r"\[192, 384, 448\], depths \[1, 2, 2\] \(arch 's6'\): give weights of arch "
           r"'b[14]', or set the backbone's arch \(model.backbone.arch\) to 's6'")


def save_model(model: torch.nn.Module, path: str, backbone: dict = None) -> str:
    """Save ``model`` as an MMEngine checkpoint, its backbone replaced by ``backbone``
    (the state_dict of another variant) when given: weights of the same detector or
    segmentor trained with another backbone variant."""
    state = model.state_dict()
    if backbone is not None:
        state = {k: v for k, v in state.items() if not k.startswith('backbone.')}
        state.update({f'backbone.{k}': v for k, v in backbone.items()})
    save_checkpoint(dict(state_dict=state, meta=dict()), path)
    return path


@pytest.fixture(scope='module')
def s6_backbone() -> dict:
    torch.manual_seed(0)
    return MobileMamba('s6').state_dict()


@pytest.fixture(scope='module')
def det_ckpts(tmp_path_factory, repo_root, build_model, s6_backbone) -> dict:
    """The B1 toy RetinaNet's own weights ('b1') and the same with S6's backbone ('s6')."""
    root = tmp_path_factory.mktemp('det')
    model = build_model(osp.join(repo_root, DET_TOY))
    return dict(b1=save_model(model, str(root / 'b1.pth')),
                s6=save_model(model, str(root / 's6.pth'), s6_backbone))


def test_init_detector_refuses_another_variant(repo_root, det_ckpts):
    from mmdet.apis import init_detector
    config = osp.join(repo_root, DET_TOY)
    with pytest.raises(CheckpointError, match=S6_IN_B):
        init_detector(config, det_ckpts['s6'], device='cpu')
    model = init_detector(config, det_ckpts['b1'], device='cpu')
    saved = torch.load(det_ckpts['b1'])['state_dict']
    assert torch.equal(model.state_dict()[KEY], saved[KEY])


def test_mmdet_test_script_refuses_another_variant(repo_root, det_ckpts, tmp_path, run_tool):
    """mmdet's own tools/test.py (installed with mmdet under .mim/tools) on our config."""
    import mmdet

    from mmmobilemamba.datasets.toy_detection import make_toy_coco
    script = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'test.py')
    data = make_toy_coco(str(tmp_path / 'coco'), num_train=1, num_val=1, size=64)
    run = run_tool(script, osp.join(repo_root, DET_TOY), det_ckpts['s6'], '--work-dir',
                   str(tmp_path / 'work'), '--cfg-options',
                   f'test_dataloader.dataset.data_root={data}/',
                   f'test_evaluator.ann_file={data}/annotations/instances_val2017.json',
                   cwd=str(tmp_path), check=False, timeout=300)
    assert run.returncode != 0
    assert re.search('CheckpointError: .*' + S6_IN_B, run.stderr), run.stderr[-3000:]


def test_mmseg_init_model_refuses_another_variant(repo_root, build_model, s6_backbone,
                                                  tmp_path):
    from mmseg.apis import init_model
    config = osp.join(repo_root, SEG_TOY)
    model = build_model(config)
    bad = save_model(model, str(tmp_path / 's6.pth'), s6_backbone)
    good = save_model(model, str(tmp_path / 'b4.pth'))
    with pytest.raises(CheckpointError, match=S6_IN_B):
        init_model(config, bad, device='cpu')
    loaded = init_model(config, good, device='cpu')
    assert torch.equal(loaded.state_dict()[KEY], model.state_dict()[KEY])


def test_mmpretrain_get_model_refuses_another_arch(tmp_path, tiny_arch):
    """A classifier of a custom arch (the toy config, backbone swapped) into the T2 toy."""
    from mmpretrain import get_model
    tiny = get_model(CLS_TOY, backbone=dict(arch=dict(tiny_arch(), _delete_=True)),
                     head=dict(in_channels=64))
    bad = save_model(tiny, str(tmp_path / 'tiny.pth'))
    with pytest.raises(CheckpointError, match=(
            r'backbone\.patch_embed\.0\.c\.weight: checkpoint \(4, 3, 3, 3\) vs model '
            r"\(18, 3, 3, 3\).*This backbone is arch 't2' \(embed_dims \[144, 272, 368\], "
            r'depths \[1, 2, 2\]\)\. The checkpoint holds a MobileMamba with embed_dims '
            r"\[32, 48, 64\], depths \[1, 1, 1\]: give weights of arch 't2', or set the "
            r"backbone's arch \(model.backbone.arch\) to that of the checkpoint")):
        get_model(CLS_TOY, pretrained=bad)
    t2 = get_model(CLS_TOY)
    good = save_model(t2, str(tmp_path / 't2.pth'))
    loaded = get_model(CLS_TOY, pretrained=good)
    assert torch.equal(loaded.state_dict()[KEY], t2.state_dict()[KEY])


def test_load_state_dict_and_ema_copy_refuse_another_arch(tiny_arch):
    """torch's own loader, and an MMEngine EMA copy (keys under ``module.``)."""
    wide = dict(tiny_arch(), embed_dims=[32, 48, 80])
    other, model = MobileMamba(wide).state_dict(), MobileMamba(tiny_arch())
    with pytest.raises(CheckpointError, match=r"The checkpoint does not match this MobileMamba "
                       r'backbone: \d+ of \d+ keys .*blocks3\.\d\..*: checkpoint \(80'):
        model.load_state_dict(other, strict=False)
    ema = ExponentialMovingAverage(model)
    with pytest.raises(CheckpointError, match=r"checkpoint's module\.\* part does not match.*"
                       r'module\.blocks3\.'):
        ema.load_state_dict({f'module.{k}': v for k, v in other.items()}, strict=False)
    own = {f'module.{k}': v + 1 if v.is_floating_point() else v
           for k, v in model.state_dict().items()}
    ema.load_state_dict(dict(own, steps=torch.tensor(3)))
    assert torch.equal(ema.module.patch_embed[0].c.weight, own['module.patch_embed.0.c.weight'])


def test_partial_head_only_and_fused_state_dicts(tiny_arch):
    """Under half of the backbone's tensors is another model; none of them (a head-only file)
    is not the backbone's business; fused and unfused weights do not mix."""
    model = MobileMamba(tiny_arch())
    state = model.state_dict()
    few = dict(list(state.items())[:len(state) // 3])
    with pytest.raises(CheckpointError, match=r'keys do not match \(\d+ missing: '):
        model.load_state_dict(few, strict=False)
    head = torch.nn.Linear(64, 2)
    wrapper = torch.nn.ModuleDict(dict(backbone=model, head=head))
    missing, _ = wrapper.load_state_dict({f'head.{k}': v for k, v in head.state_dict().items()},
                                         strict=False)
    assert {k for k in state if 'num_batches_tracked' not in k} == {
        k[len('backbone.'):] for k in missing}

    fused = fuse_modules(MobileMamba(tiny_arch()).eval())
    assert checkpoint_arch(fused.state_dict()) == checkpoint_arch(state) == dict(
        embed_dims=[32, 48, 64], depths=[1, 1, 1])
    with pytest.raises(CheckpointError, match=r'This model is fused \(switch_to_deploy\): '
                       'load the checkpoint, then fuse'):
        fused.load_state_dict(state)
    with pytest.raises(CheckpointError, match=r'The checkpoint is of a fused model'):
        model.load_state_dict(fused.state_dict())
    other = fuse_modules(MobileMamba(tiny_arch()).eval())
    other.load_state_dict(fused.state_dict())
    assert torch.equal(other.patch_embed[0].weight, fused.patch_embed[0].weight)


def test_pretrained_from_mmseg_upernet_base(tmp_path, tiny_arch, build_model):
    """mmseg's EncoderDecoder passes ``model.pretrained`` to the backbone: a config that
    inherits mmseg's UPerNet-R50 base with our backbone swapped in builds and loads it."""
    from mmengine.config import Config
    backbone = MobileMamba(tiny_arch())
    ckpt = str(tmp_path / 'tiny_backbone.pth')
    torch.save(backbone.state_dict(), ckpt)
    config = tmp_path / 'upernet_mobilemamba_tiny.py'
    config.write_text(f"""
_base_ = 'mmseg::_base_/models/upernet_r50.py'
custom_imports = dict(imports=['mmmobilemamba'], allow_failed_imports=False)
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    pretrained={ckpt!r},
    backbone=dict(_delete_=True, type='MobileMamba', arch={tiny_arch()!r},
                  out_indices=(0, 1, 2, 3)),
    decode_head=dict(in_channels=[32, 32, 48, 64], channels=16, num_classes=4,
                     norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=48, channels=16, num_classes=4, norm_cfg=norm_cfg))
""")
    cfg = Config.fromfile(str(config))
    with pytest.warns(FutureWarning, match=r'pretrained= is deprecated; use init_cfg'):
        model = build_model(cfg, scope='mmseg')
    assert model.backbone.init_cfg == dict(type='Pretrained', checkpoint=ckpt)
    model.init_weights()
    assert torch.equal(model.backbone.patch_embed[0].c.weight, backbone.patch_embed[0].c.weight)

    cfg.model.pretrained = 'open-mmlab://resnet50_v1c'  # the base's own value, untouched
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=ckpt)
    with pytest.raises(ValueError, match=r"both pretrained='open-mmlab://resnet50_v1c' and "
                       r'init_cfg=.*model\.pretrained=None'):
        build_model(cfg, scope='mmseg')


def test_pretrained_argument(tiny_arch):
    with pytest.warns(FutureWarning):
        model = MobileMamba(tiny_arch(), pretrained='w.pth',
                            init_cfg=dict(type='Pretrained', checkpoint=None, use_ema=True))
    assert model.init_cfg == dict(type='Pretrained', checkpoint='w.pth', use_ema=True)
    with pytest.raises(TypeError, match=r'pretrained must be a checkpoint path \(str\) or None, '
                       'got bool'):
        MobileMamba(tiny_arch(), pretrained=True)
    assert MobileMamba(tiny_arch(), pretrained=None).init_cfg is None


def test_converter_to_official_and_back(tmp_path, run_tool, build_model, repo_root):
    """An mmpretrain checkpoint -> official layout (the tool) -> mmpretrain again."""
    model_cfg = osp.join(repo_root, 'configs', 'classification', CLS_TOY + '.py')
    mm, official, back = (str(tmp_path / n) for n in ('mm.pth', 'official.pth', 'back.pth'))
    save_model(build_model(model_cfg), mm)
    run_tool('tools/model_converters/mobilemamba_official_to_mm.py', mm, official,
             '--to-official')
    keys = list(torch.load(official)['model'])
    assert keys[0] == 'patch_embed.0.c.weight' and keys[-1].startswith('head.')
    convert_checkpoint(official, back)
    original, restored = torch.load(mm)['state_dict'], torch.load(back)['state_dict']
    assert list(restored) == list(original)
    assert all(torch.equal(v, original[k]) for k, v in restored.items())
    load_checkpoint(build_model(model_cfg), back, strict=True)
    with pytest.raises(CheckpointError, match=r'back\.pth does not look like an official '
                       r'MobileMamba checkpoint.*--to-official'):
        convert_checkpoint(back, str(tmp_path / 'again.pth'))
