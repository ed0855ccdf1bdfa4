"""Refuse MMEngine's ``compile`` option before training starts, saying why and what to use."""
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

COMPILE_HINT = (
    "MMEngine's compile option torch.compiles the whole train_step, the optimizer step "
    'included, and TorchDynamo fails inside torch.optim.AdamW.step on mmengine\'s parameter '
    'groups (InternalTorchDynamoError); a compiled MobileMamba training step also measured no '
    'faster than the eager one (docs/benchmarks.md: the step is bound by its host time). '
    'Remove compile from the config (--cfg-options compile=None). To compile the backbone '
    'alone with symbolic image sizes (detection, segmentation), set '
    'model.backbone.compile_cfg=dict(dynamic=True). For classification on one GPU, '
    'tools/train.py --cuda-graph replays the whole step as one CUDA graph, and '
    '--gpu-augment moves the augmentation to the GPU.')


@HOOKS.register_module()
class CheckCompileHook(Hook):
    """Stop a training run that sets ``compile`` (any entry point: ours, mmpretrain's,
    mmdet's or mmseg's ``tools/train.py``) with :data:`COMPILE_HINT`, before the first
    iteration, instead of a TorchDynamo error from inside the optimizer."""

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        if runner.cfg.get('compile'):
            raise ValueError(f'compile={runner.cfg.compile!r}: {COMPILE_HINT}')
