"""mmdet 3.3's ``SSDHead`` with the attribute its predict path reads.

``SSDHead.__init__`` skips ``AnchorHead.__init__`` (SSD computes its own hard-negative-mined
cross-entropy), so ``self.loss_cls`` is never set; ``BaseDenseHead._predict_by_feat_single``
then does ``getattr(self.loss_cls, 'custom_cls_channels', False)`` and every test/val run
dies with ``AttributeError: 'SSDHead' object has no attribute 'loss_cls'``. Defining the
attribute as ``None`` takes the plain softmax branch there, as intended for SSD.
"""
from mmdet.models.dense_heads import SSDHead
from mmengine.registry import MODELS


@MODELS.register_module()
class FixedSSDHead(SSDHead):
    """``SSDHead`` that can predict in mmdet 3.3 (same arguments, parameters and losses)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.loss_cls = None
