"""Prepare the next training batch (the data preprocessor's work) while the current one
trains: on a thread of its own and, on CUDA, a stream of its own."""
import queue
import threading
from contextlib import nullcontext
from typing import Callable, Iterator, List, Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner import EpochBasedTrainLoop


class PreprocessedBatch(dict):
    """A data preprocessor's output, made ahead by :class:`BatchPrefetcher`; the model's
    preprocessor hands it on unchanged."""


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


def _check_ahead(value, name: str) -> None:
    """``name`` (a count of batches ahead) must be a positive int."""
    if not isinstance(value, int) or value < 1:
        raise ValueError(f'{name} must be an int >= 1, got {value!r}.')


def _cuda_storages(data: dict) -> List[torch.Tensor]:
    """One tensor per distinct CUDA allocation in a preprocessor output (the inputs and
    the data samples' fields, which are views of a few batch tensors)."""
    tensors = [data['inputs']] if isinstance(data.get('inputs'), torch.Tensor) else []
    for sample in data.get('data_samples') or []:
        tensors += [v for v in sample.values() if isinstance(v, torch.Tensor)]
    found = {}
    for t in tensors:
        if t.is_cuda:
            found.setdefault(t.untyped_storage().data_ptr(), t)
    return list(found.values())


class BatchPrefetcher:
    """Iterate ``prepare(batch)`` over ``batches``, up to ``ahead`` batches ahead.

    A thread prepares batches ``i + 1 .. i + ahead`` while the caller trains on batch
    ``i``; on CUDA it queues its kernels on a stream of its own, and the caller's stream
    waits for them (the host never does). More than one ahead can absorb the workers'
    uneven delivery, at the cost of more batches held on the device. Only that thread
    draws the batches' random numbers, in batch order, so the batches are those of
    preparing them in the loop. It asks ``batches`` for a batch only while fewer than
    ``ahead`` wait untaken, and stops at the end of ``batches``: the random state at the
    end of an epoch is the same as without it.
    """

    def __init__(self, batches: Iterator, prepare: Callable[[dict], dict],
                 device: torch.device, ahead: int = 1) -> None:
        _check_ahead(ahead, 'BatchPrefetcher: ahead')
        self.batches, self.prepare, self.ahead = batches, prepare, ahead
        self.device = torch.device(device)
        self.stream = torch.cuda.Stream(self.device) if self.device.type == 'cuda' else None
        self.permits = threading.Semaphore(0)
        self.ready: queue.Queue = queue.Queue()
        self.stopped, self.started = False, False
        self.thread = threading.Thread(target=self._run, name='BatchPrefetcher', daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while True:
                self.permits.acquire()
                if self.stopped:
                    return
                try:
                    batch = next(self.batches)
                except StopIteration:
                    self.ready.put(_END)
                    return
                stream = torch.cuda.stream(self.stream) if self.stream else nullcontext()
                with stream:
                    data = PreprocessedBatch(self.prepare(batch))
                    event = None
                    if self.stream is not None:
                        event = torch.cuda.Event()
                        event.record(self.stream)
                self.ready.put((data, event, _cuda_storages(data)))
        except BaseException as error:  # noqa: BLE001  (re-raised in the training thread)
            self.ready.put(_Failure(error))

    def __iter__(self) -> 'BatchPrefetcher':
        return self

    def __next__(self) -> PreprocessedBatch:
        if not self.started:
            self.started = True
            self.permits.release(self.ahead)
        item = self.ready.get()
        if item is _END or isinstance(item, _Failure):
            self.ready.put(item)  # the thread has ended: so it stays
            if item is _END:
                raise StopIteration
            raise item.error
        data, event, storages = item
        if event is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_event(event)
            for t in storages:  # their memory is not reused before this stream is done
                t.record_stream(current)
        self.permits.release()  # the next batch, while the caller trains on this one
        return data

    def close(self) -> None:
        """Stop the thread (it ends after the batch it is preparing, if any)."""
        self.stopped = True
        self.permits.release()
        self.thread.join()


class _PrefetchingLoader:
    """The train loop's data loader, iterated through a :class:`BatchPrefetcher`; every
    other attribute (sampler, dataset, len) is the loader's."""

    def __init__(self, loader, make_prefetcher: Callable[[Iterator], BatchPrefetcher]) -> None:
        self.loader, self.make_prefetcher = loader, make_prefetcher
        self.prefetcher: Optional[BatchPrefetcher] = None

    def __iter__(self) -> BatchPrefetcher:
        self.close()
        self.prefetcher = self.make_prefetcher(iter(self.loader))
        return self.prefetcher

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str):
        if name == 'loader':  # not set yet (copy, pickle)
            raise AttributeError(name)
        return getattr(self.loader, name)

    def close(self) -> None:
        if self.prefetcher is not None:
            self.prefetcher.close()
            self.prefetcher = None


@HOOKS.register_module()
class PrefetchBatchesHook(Hook):
    """Run the model's data preprocessor on the next training batch while the current one
    trains.

    With ``--gpu-augment`` the preprocessor copies each batch's decoded images to the GPU
    (through pinned memory: ~60 MB for 128 ImageNet images) and augments them there, host
    time that would otherwise come before each step. A :class:`BatchPrefetcher` thread does
    it one batch ahead, on its own CUDA stream (the copy and the graph replays release the
    GIL); the model's preprocessor then hands the prepared batch on. The batches are the
    same as without the hook: their random draws happen in the same order, in that thread
    alone, and none run past the end of an epoch (where ``RandomStateHook`` saves and
    resumes). Validation is unchanged.

    Needs an epoch-based train loop and a preprocessor whose random draws come from NumPy,
    Python or its own generator (``GPUAugmentClsDataPreprocessor``); ones that draw from
    torch's default generators would race with the model's dropout on the other thread.

    Args:
        batches_ahead: how many batches may wait prepared (each holds its decoded images
            on the GPU until it trains).
    """

    priority = 'LOW'

    def __init__(self, batches_ahead: int = 1) -> None:
        _check_ahead(batches_ahead, 'PrefetchBatchesHook: batches_ahead')
        self.batches_ahead = batches_ahead

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        if not isinstance(loop, EpochBasedTrainLoop):
            raise TypeError(f'PrefetchBatchesHook wraps an epoch-based train loop, got '
                            f'{type(loop).__name__}; set train_cfg.by_epoch=True or remove '
                            'the hook.')
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        preprocessor = model.data_preprocessor
        forward = preprocessor.forward  # the class's, bound

        def hand_on(data, training: bool = False):
            return dict(data) if isinstance(data, PreprocessedBatch) else forward(
                data, training)

        preprocessor.forward = hand_on
        device = next(model.parameters()).device
        loop.dataloader = _PrefetchingLoader(
            loop.dataloader,
            lambda batches: BatchPrefetcher(batches, lambda data: forward(data, True), device,
                                            self.batches_ahead))
        self.preprocessor = preprocessor

    def after_train(self, runner) -> None:
        loop = runner.train_loop
        if isinstance(loop.dataloader, _PrefetchingLoader):
            loop.dataloader.close()
            loop.dataloader = loop.dataloader.loader
        self.preprocessor.__dict__.pop('forward', None)
