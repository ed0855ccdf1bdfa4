"""The knowledge-distillation classifier (KDImageClassifier): the teacher's own input
normalisation, the KD loss value and which heads it trains, a frozen teacher kept outside
the student's parameters and state_dict, and the toy KD config's lazily built teacher."""
import os.path as osp

import pytest
import torch
from mmpretrain.models import ImageClassifier
from mmpretrain.structures import DataSample

from mmmobilemamba.models.classifiers import KDImageClassifier

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture
def tiny_classifier(tiny_arch):
    """``tiny_classifier(cls=ImageClassifier, distillation=False, num_classes=5, **kwargs)``:
    a classifier on the tiny arch (64 output channels)."""
    def build(cls=ImageClassifier, distillation=False, num_classes=5, **kwargs):
        return cls(backbone=dict(type='MobileMamba', arch=tiny_arch()),
                   neck=dict(type='GlobalAveragePooling'),
                   head=dict(type='BNLinearClsHead', num_classes=num_classes, in_channels=64,
                             distillation=distillation),
                   **kwargs)
    return build


@pytest.fixture
def tiny_teacher_cfg(tiny_arch):
    """``tiny_teacher_cfg(**data_preprocessor)``: a 5-class teacher config on the tiny arch."""
    def cfg(**data_preprocessor) -> dict:
        return dict(type='ImageClassifier', backbone=dict(type='MobileMamba', arch=tiny_arch()),
                    neck=dict(type='GlobalAveragePooling'),
                    head=dict(type='BNLinearClsHead', num_classes=5, in_channels=64),
                    data_preprocessor=data_preprocessor or None)
    return cfg


def kd_batch(model, n=4, size=64, num_classes=5) -> dict:
    """A preprocessed training batch of random uint8 images with cycling labels."""
    data = dict(inputs=[torch.randint(0, 256, (3, size, size), dtype=torch.uint8)
                        for _ in range(n)],
                data_samples=[DataSample().set_gt_label(i % num_classes) for i in range(n)])
    return model.data_preprocessor(data, training=True)


def test_teacher_inputs_use_the_teachers_normalisation(tiny_classifier, tiny_teacher_cfg):
    kd = tiny_classifier(KDImageClassifier,
                         teacher=tiny_teacher_cfg(mean=[0.] * 3, std=[255.] * 3, to_rgb=True),
                         data_preprocessor=dict(mean=MEAN, std=STD, to_rgb=True))
    raw_bgr = torch.randint(0, 256, (2, 3, 40, 48), dtype=torch.uint8)
    student_in = kd.data_preprocessor(dict(inputs=raw_bgr))['inputs']
    rgb01 = raw_bgr.flip(1).float() / 255
    torch.testing.assert_close(kd.teacher_inputs(student_in), rgb01, atol=1e-5, rtol=0)
    kd.teacher.data_preprocessor.to_rgb = False  # a BGR teacher gets the channels flipped
    torch.testing.assert_close(kd.teacher_inputs(student_in), rgb01.flip(1), atol=1e-5, rtol=0)
    kd.teacher_input_size = 32
    assert kd.teacher_inputs(student_in).shape == (2, 3, 32, 32)


@pytest.mark.parametrize('distillation', [False, True])
def test_kd_loss_terms_and_gradients(distillation, tiny_classifier, tiny_teacher_cfg, n_params):
    torch.manual_seed(0)
    kd = tiny_classifier(KDImageClassifier, distillation=distillation,
                         teacher=tiny_teacher_cfg(mean=[0.] * 3, std=[255.] * 3, to_rgb=True),
                         kd_weight=5.0, tau=2.0,
                         data_preprocessor=dict(mean=MEAN, std=STD, to_rgb=True))
    kd.train()
    data = kd_batch(kd)
    losses = kd.loss(data['inputs'], data['data_samples'])
    assert set(losses) == {'loss_cls', 'loss_kd'}
    # the teacher stays outside the student: no parameters, state_dict keys or submodules
    assert not any('teacher' in k for k, _ in kd.named_modules())
    assert not any('teacher' in k for k in kd.state_dict())
    assert n_params(kd) == n_params(tiny_classifier(distillation=distillation))
    assert not kd.teacher.training
    assert not any(p.requires_grad for p in kd.teacher.parameters())
    # loss_kd = w * tau^2 * KL(teacher || student), summed over classes, batch mean
    with torch.no_grad():
        logits = kd.head(kd.extract_feat(data['inputs']))
        s = logits[1] if distillation else logits
        t = kd.teacher(kd.teacher_inputs(data['inputs']), mode='tensor')
        p_t = t.div(2.0).softmax(1)
        kl = (p_t * (p_t.log() - s.div(2.0).log_softmax(1))).sum(1).mean()
    torch.testing.assert_close(losses['loss_kd'], 5.0 * 4.0 * kl, rtol=1e-4, atol=1e-7)
    cls_w = kd.head.head.l.weight
    kd.zero_grad()
    losses['loss_kd'].backward(retain_graph=True)
    assert kd.backbone.patch_embed[0].c.weight.grad.abs().sum() > 0
    if distillation:  # DeiT: the dist head learns from the teacher, the class head does not
        assert cls_w.grad is None or not cls_w.grad.any()
        kd.zero_grad()
        losses['loss_cls'].backward()
        dist_w = kd.head.head_dist.l.weight
        assert dist_w.grad is None or not dist_w.grad.any()
        assert cls_w.grad.abs().sum() > 0
    else:  # the reference recipe: one head learns from both
        assert cls_w.grad.abs().sum() > 0


def test_kd_loss_vanishes_for_a_copy_of_the_student(tiny_classifier, tiny_teacher_cfg):
    kd = tiny_classifier(KDImageClassifier,
                         teacher=tiny_teacher_cfg(mean=MEAN, std=STD, to_rgb=True),
                         data_preprocessor=dict(mean=MEAN, std=STD, to_rgb=True))
    kd.teacher.load_state_dict(kd.state_dict())
    kd.eval()  # batch statistics would differ between the two in train mode
    data = kd_batch(kd)
    with torch.no_grad():
        assert kd.loss(data['inputs'], data['data_samples'])['loss_kd'].abs() < 1e-6


def test_kd_toy_config_builds_its_teacher_lazily(repo_root, build_model):
    model = build_model(osp.join(repo_root, 'configs', 'classification',
                                 'mobilemamba_t2_8xb128_in1k_kd-1000e_toy.py'))
    assert model._teacher is None  # building and testing the student needs no teacher
    model.train()
    data = kd_batch(model, n=2, num_classes=4)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert set(losses) == {'loss_cls', 'loss_kd'}
    assert all(torch.isfinite(v) for v in losses.values())
    assert model.teacher.data_preprocessor.std.flatten().tolist() == [255.] * 3
