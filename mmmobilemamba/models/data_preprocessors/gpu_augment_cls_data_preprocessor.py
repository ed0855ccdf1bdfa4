"""The classification recipe with its training images decoded and augmented on the GPU: the
dataloader workers only read file bytes (``LoadImageBytes``), and
``GPUAugmentClsDataPreprocessor`` decodes them (nvJPEG on a CUDA device) and runs the
pipeline's augmentation there (:class:`GPUTrainAugment`). ``use_gpu_augment(cfg)`` rewrites a
config so (``tools/train.py --gpu-augment``); validation keeps its CPU pipeline."""
import io
from typing import List, Sequence

import torch
import torch.nn.functional as F
from mmcv.transforms import BaseTransform
from mmengine.config import Config
from mmengine.fileio import get
from mmpretrain.datasets.transforms import PackInputs
from mmpretrain.models.utils import ClsDataPreprocessor
from mmpretrain.registry import MODELS, TRANSFORMS
from PIL import Image
from torch import Tensor

from mmmobilemamba.utils.device_copy import on_device
from .gpu_augment import GPUTrainAugment

EXIF_ORIENTATION = 0x0112


@TRANSFORMS.register_module()
class LoadImageBytes(BaseTransform):
    """Read an image file's bytes, undecoded, as a 1-D uint8 tensor in ``results['img']``,
    and its EXIF orientation (1-8, 1 = upright) in ``results['orientation']``, which
    mmcv's cv2 reader applies and nvJPEG does not."""

    def transform(self, results: dict) -> dict:
        data = get(results['img_path'])
        try:
            orientation = Image.open(io.BytesIO(data)).getexif().get(EXIF_ORIENTATION, 1)
        except Exception as err:  # noqa: BLE001  (PIL raises many types for broken files)
            raise OSError(f'{results["img_path"]} is not a readable image ({err}).') from err
        results['img'] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        results['orientation'] = int(orientation)
        return results


def orient(img: Tensor, orientation: int) -> Tensor:
    """Apply an EXIF orientation to a (3, H, W) image, as Pillow's exif_transpose does."""
    if orientation in (5, 6, 7, 8):
        img = img.transpose(1, 2)
    flips = {2: (2, ), 3: (1, 2), 4: (1, ), 6: (2, ), 7: (1, 2), 8: (1, )}.get(orientation)
    return img.flip(flips) if flips else img


def decode_images(encoded: List[Tensor], orientations: Sequence[int],
                  device: torch.device, bgr: bool = True) -> List[Tensor]:
    """(3, H, W) uint8 BGR images on ``device``, as mmcv's ``LoadImageFromFile`` reads them
    (colour, EXIF orientation applied, BGR; RGB without ``bgr``, which spares a copy per
    image). JPEGs decode in one batched call (nvJPEG on CUDA); a file that call cannot take
    (PNG, CMYK JPEG) goes through torchvision's CPU decoder."""
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg
    try:
        images = decode_jpeg(list(encoded), mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        images = []
        for data in encoded:
            try:
                images.append(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
            except RuntimeError:
                images.append(decode_image(data, mode=ImageReadMode.RGB).to(device))
    images = [orient(img, o) for img, o in zip(images, orientations)]
    return [img.flip(0) for img in images] if bgr else images


@MODELS.register_module()
class GPUAugmentClsDataPreprocessor(ClsDataPreprocessor):
    """``ClsDataPreprocessor`` for training batches of file bytes (``LoadImageBytes``):
    decoded and augmented on the model's device by ``augment``, the train pipeline's
    transforms between loading and packing, then normalised and mixed (Mixup/CutMix) as
    ``ClsDataPreprocessor`` does. Decoded batches (validation, testing) pass as before.

    Nothing of a training batch waits for the GPU: the labels go over in one asynchronous
    copy, and the batch augments draw their permutations on the device (mmpretrain's
    ``Mixup``/``CutMix`` index with a CPU ``randperm``, which would wait for the previous
    training step).

    Args:
        augment: mmpretrain transform configs, ``RandomResizedCrop`` first
            (:class:`GPUTrainAugment`).
        **kwargs: ``ClsDataPreprocessor``'s.
    """

    def __init__(self, augment: Sequence[dict], **kwargs) -> None:
        super().__init__(**kwargs)
        self.augment = GPUTrainAugment(augment)

    def forward(self, data: dict, training: bool = False) -> dict:
        inputs = data['inputs']
        if isinstance(inputs, (list, tuple)) and inputs and inputs[0].dim() == 1:
            if not training:
                raise ValueError('GPUAugmentClsDataPreprocessor got undecoded images outside '
                                 'training: only train_dataloader may use LoadImageBytes.')
            samples = data.get('data_samples') or []
            orientations = [s.metainfo.get('orientation', 1) for s in samples]
            images = decode_images(inputs, orientations or [1] * len(inputs), self.device,
                                   bgr=False)
            data = dict(data, inputs=self.augment(images, rgb=True))
            if samples and all('gt_label' in s for s in samples):
                self._labels_to_device(samples)
            with torch.device(self.device):
                return super().forward(data, training)
        return super().forward(data, training)

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
    """Move a classification config's training decode and augmentation to the GPU: the
    train pipeline becomes ``LoadImageBytes`` + its ``PackInputs`` (which also keeps the
    orientation), the data preprocessor a ``GPUAugmentClsDataPreprocessor`` with the
    pipeline's transforms and the old one's settings, the collate function
    ``one_storage_collate`` over ``pseudo_collate`` (the files differ in length; their bytes
    travel as one tensor)."""
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
    pack['meta_keys'] = tuple(pack.get('meta_keys', PackInputs.DEFAULT_META_KEYS)) + (
        'orientation', )
    dataset.pipeline = [dict(type='LoadImageBytes'), pack]
    cfg.train_dataloader.collate_fn = dict(type='one_storage_collate', base='pseudo_collate')
    owner = cfg.model if cfg.model.get('data_preprocessor') else cfg
    old = dict(owner.get('data_preprocessor') or {})
    if old.pop('type', 'ClsDataPreprocessor') not in ('ClsDataPreprocessor',
                                                      'mmpretrain.ClsDataPreprocessor'):
        raise ValueError('--gpu-augment replaces ClsDataPreprocessor; this config has '
                         f'{owner.data_preprocessor.type}.')
    owner.data_preprocessor = dict(old, type='GPUAugmentClsDataPreprocessor',
                                   augment=pipeline[1:-1])
    return cfg


