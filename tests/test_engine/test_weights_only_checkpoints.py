"""MMEngine checkpoints of a model holding our backbone on the installed torch: save,
load_from and resume work under torch's weights-only loading (the default since torch 2.6)
without TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD."""
import os

import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner

from mmmobilemamba.models import MobileMamba


class TinyModel(BaseModel):
    """The tiny-arch backbone with a 2-class linear head."""

    def __init__(self, arch: dict):
        super().__init__()
        self.backbone = MobileMamba(arch)
        self.fc = torch.nn.Linear(64, 2)

    def forward(self, inputs, labels=None, mode='loss'):
        logits = self.fc(self.backbone(inputs)[-1].mean((2, 3)))  # default_collate stacked
        if mode == 'loss':
            return dict(loss=torch.nn.functional.cross_entropy(logits, labels))
        return logits


def make_runner(work_dir, epochs, arch, **kwargs):
    """An epoch-based Runner on 8 random 32 px samples, checkpointing every epoch."""
    data = [dict(inputs=torch.randn(3, 32, 32), labels=torch.tensor(i % 2)) for i in range(8)]
    return Runner(
        model=TinyModel(arch), work_dir=str(work_dir), experiment_name=f'run{epochs}{len(kwargs)}',
        train_dataloader=dict(dataset=data, batch_size=4, collate_fn=dict(type='default_collate'),
                              sampler=dict(type='DefaultSampler', shuffle=True)),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        randomness=dict(seed=0), **kwargs)


def test_save_load_from_and_resume_without_env_switch(tmp_path, tiny_arch):
    assert 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' not in os.environ
    make_runner(tmp_path, 1, tiny_arch()).train()
    ckpt = tmp_path / 'epoch_1.pth'
    assert ckpt.exists()
    saved = torch.load(ckpt)  # weights_only=True by default on torch >= 2.6
    assert 'message_hub' in saved and 'optimizer' in saved

    runner = make_runner(tmp_path, 1, tiny_arch(), load_from=str(ckpt))
    runner.load_or_resume()
    for k, v in saved['state_dict'].items():
        assert torch.equal(runner.model.state_dict()[k], v), k

    resumed = make_runner(tmp_path, 2, tiny_arch(), resume=True, load_from=str(ckpt))
    resumed.train()
    assert resumed.epoch == 2 and resumed.iter == 4
    assert (tmp_path / 'epoch_2.pth').exists()
