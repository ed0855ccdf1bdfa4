"""The classification recipe with its training augmentation on the GPU: the dataloader
workers decode each image (the pipeline's own ``LoadImageFromFile``) and draw its random
parameters (``DrawGPUAugment``), and ``GPUAugmentClsDataPreprocessor`` applies them to the
batch there (:class:`GPUTrainAugment`). ``use_gpu_augment(cfg)`` rewrites a config so
(``tools/train.py --gpu-augment``); validation keeps its CPU pipeline."""
from typing import List, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmcv.transforms import BaseTransform
from mmengine.config import Config
from mmpretrain.models.utils import ClsDataPreprocessor
from mmpretrain.registry import MODELS, TRANSFORMS
from torch import Tensor
from torch.overrides import TorchFunctionMode

from mmmobilemamba.utils.device_copy import on_device, views_on_device
from .gpu_augment import GPUTrainAugment

PARAMS_KEY = 'gpu_augment'  # the data sample field that carries an image's draws


@TRANSFORMS.register_module()
class DrawGPUAugment(BaseTransform):
    """Draw a decoded image's augmentation parameters, as the CPU pipeline's transforms
    ``transforms`` would on it, into ``results['gpu_augment']`` (a float64 row, see
    :meth:`GPUTrainAugment.draw`). Only the drawn crop box travels on: the image becomes a
    view of the box in the decoder's HWC memory, viewed as CHW (``PackInputs`` would copy
    it into CHW order; the GPU crop reads either), and the row's box starts at (0, 0). The
    crop reads nothing outside its box, as mmcv's crop-then-resize, so the batch is the same
    while the collate, the copy to the GPU and their page faults handle about half the bytes
    (RandomResizedCrop's mean area). Its ``PackInputs`` keeps the row (``algorithm_keys``).

    Args:
        transforms: the train pipeline's augmentation configs, ``RandomResizedCrop`` first.
    """

    def __init__(self, transforms: Sequence[dict]) -> None:
        self.augment = GPUTrainAugment(transforms)

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        row = self.augment.draw(h, w)
        top, left, box_h, box_w = (int(v) for v in row[:4])
        row[:2] = 0
        results[PARAMS_KEY] = row
        if isinstance(img, np.ndarray) and img.ndim == 3:
            img = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
        results['img'] = img[..., top:top + box_h, left:left + box_w]
        results['img_shape'] = (box_h, box_w)
        return results


class _PermuteWith(TorchFunctionMode):
    """``torch.randperm`` calls without a generator (mmpretrain's Mixup/CutMix) draw from
    ``generator``, on its device."""

    def __init__(self, generator: torch.Generator) -> None:
        super().__init__()
        self.generator = generator

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is torch.randperm and kwargs.get('generator') is None:
            kwargs.update(generator=self.generator, device=self.generator.device)
        return func(*args, **kwargs)


@MODELS.register_module()
class GPUAugmentClsDataPreprocessor(ClsDataPreprocessor):
    """``ClsDataPreprocessor`` for training batches drawn by ``DrawGPUAugment``: augmented
    on the model's device by ``augment``, the train pipeline's transforms between loading
    and packing, then normalised and mixed (Mixup/CutMix) as ``ClsDataPreprocessor`` does.
    Other batches (validation, testing) pass as before.

    Nothing of a training batch waits for the GPU: the images go over in one asynchronous
    copy (one per storage: ``one_storage_collate`` makes it one), so do the labels, and the
    batch augments draw their permutations on the device (mmpretrain's
    ``Mixup``/``CutMix`` index with a CPU ``randperm``, which would wait for the previous
    training step). Those permutations and RandomErasing's noise come from the
    preprocessor's own generator, seeded for each batch from NumPy's global one (which
    draws everything else): the model's dropout and drop-path keep torch's, so a batch is
    the same whether it is prepared in order or ahead, on another thread
    (``PrefetchBatchesHook``), and ``RandomStateHook`` resumes it.

    Args:
        augment: mmpretrain transform configs, ``RandomResizedCrop`` first
            (:class:`GPUTrainAugment`).
        **kwargs: ``ClsDataPreprocessor``'s.
    """

    def __init__(self, augment: Sequence[dict], **kwargs) -> None:
        super().__init__(**kwargs)
        self.augment = GPUTrainAugment(augment)
        self._generator = None

    def forward(self, data: dict, training: bool = False) -> dict:
        samples = data.get('data_samples') or []
        if samples and PARAMS_KEY in samples[0]:
            if not training:
                raise ValueError('GPUAugmentClsDataPreprocessor got a batch drawn by '
                                 'DrawGPUAugment outside training: only train_dataloader '
                                 'may use it.')
            with torch.autocast(self.device.type, enabled=False):  # train_step's AMP
                return self._train_forward(data['inputs'], samples, data)
        return super().forward(data, training)

    def _train_forward(self, inputs: List[Tensor], samples: list, data: dict) -> dict:
        """Augment, normalise and mix a decoded batch with its draws, in float32 (autocast
        would run the warps' coordinates and Sharpness's filter in bfloat16)."""
        params = torch.stack([s.pop(PARAMS_KEY) for s in samples])
        generator = self._seeded_generator()
        images = views_on_device(inputs, self.device)
        data = dict(data, inputs=self.augment(images, params, generator))
        if samples and all('gt_label' in s for s in samples):
            self._labels_to_device(samples)
        with torch.device(self.device), _PermuteWith(generator):
            return super().forward(data, True)

    def _seeded_generator(self) -> torch.Generator:
        if self._generator is None or self._generator.device.type != self.device.type:
            self._generator = torch.Generator(self.device)
        self._generator.manual_seed(int(np.random.randint(2**31)))
        return self._generator

    def _labels_to_device(self, samples: list) -> None:
        """The labels on the device in one asynchronous copy. Single labels that the
        parent turns into one-hot scores become them here, in one kernel: its per-sample
        one-hot sums would launch one kernel per image."""
        labels = on_device(torch.cat([s.gt_label for s in samples]), self.device)
        sizes = [len(s.gt_label) for s in samples]
        for sample, label in zip(samples, labels.split(sizes)):
            sample.set_gt_label(label)
        num_classes = self.num_classes or samples[0].get('num_classes')
        if (self.to_onehot and num_classes and set(sizes) == {1}
                and 'gt_score' not in samples[0]):
            for sample, score in zip(samples, F.one_hot(labels, num_classes)):
                sample.set_gt_score(score)


def use_gpu_augment(cfg: Config) -> Config:
    """Move a classification config's training augmentation to the GPU: the train pipeline
    becomes its ``LoadImageFromFile``, ``DrawGPUAugment`` with its augmentation and its
    ``PackInputs`` (which also keeps the draws), the data preprocessor a
    ``GPUAugmentClsDataPreprocessor`` with the same transforms and the old one's settings,
    the collate function ``one_storage_collate`` over ``pseudo_collate`` (the images differ
    in size; they travel as one tensor), and ``PrefetchBatchesHook`` prepares each batch
    while the one before it trains (a config that has one, e.g. with its own
    ``batches_ahead``, keeps it)."""
    if cfg.get('default_scope') != 'mmpretrain':
        raise ValueError('--gpu-augment is for classification configs (mmpretrain); '
                         'detection and segmentation keep their CPU pipelines.')
    dataset = cfg.train_dataloader.dataset
    while 'pipeline' not in dataset and 'dataset' in dataset:  # dataset wrappers
        dataset = dataset.dataset
    pipeline = [dict(t) for t in dataset.pipeline]
    names = [t['type'] for t in pipeline]
    if len(names) < 3 or names[0] != 'LoadImageFromFile' or names[-1] != 'PackInputs':
        raise ValueError(f'--gpu-augment needs a train pipeline of LoadImageFromFile, the '
                         f'augmentation, PackInputs; got {names}.')
    pack = dict(pipeline[-1])
    pack['algorithm_keys'] = tuple(pack.get('algorithm_keys', ())) + (PARAMS_KEY, )
    dataset.pipeline = [pipeline[0], dict(type='DrawGPUAugment', transforms=pipeline[1:-1]),
                        pack]
    cfg.train_dataloader.collate_fn = dict(type='one_storage_collate', base='pseudo_collate')
    hooks = list(cfg.get('custom_hooks', []))
    if not any(h.get('type') in ('PrefetchBatchesHook', 'mmmobilemamba.PrefetchBatchesHook')
               for h in hooks):
        hooks.append(dict(type='PrefetchBatchesHook'))
    cfg.custom_hooks = hooks
    owner = cfg.model if cfg.model.get('data_preprocessor') else cfg
    old = dict(owner.get('data_preprocessor') or {})
    if old.pop('type', 'ClsDataPreprocessor') not in ('ClsDataPreprocessor',
                                                      'mmpretrain.ClsDataPreprocessor'):
        raise ValueError('--gpu-augment replaces ClsDataPreprocessor; this config has '
                         f'{owner.data_preprocessor.type}.')
    owner.data_preprocessor = dict(old, type='GPUAugmentClsDataPreprocessor',
                                   augment=pipeline[1:-1])
    return cfg


