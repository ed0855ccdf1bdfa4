"""Run validation/test with the fused (deploy-time) model."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from ...models.utils import fuse_modules


@HOOKS.register_module()
class SwitchToDeployHook(Hook):
    """Fold every BatchNorm of the model into its conv/linear before testing.

    It acts at ``before_test_epoch``, i.e. after the checkpoint is loaded. Fusion is
    irreversible, so it is for ``tools/test.py`` (``--fuse``), not for training runs.
    """

    priority = 'VERY_LOW'

    def before_test_epoch(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        fuse_modules(model)
