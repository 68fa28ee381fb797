"""Samplers and loaders for training and evaluation, single- and multi-process."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from . import distributed as dist_utils

__all__ = [
    "EpochDataset",
    "ResumableSampler",
    "ShardSampler",
    "make_train_loader",
    "make_eval_loader",
    "SkipBadSamples",
    "SkippingLoader",
    "TooManyBadSamples",
    "bad_sample_limit",
]


class EpochDataset(Dataset):
    """Presents ``samples_per_epoch`` samples per epoch drawn from a smaller augmented dataset.

    The paper augments Cityscapes' 2,975 training images to 17,500 samples per epoch. Sample ``i``
    of repeat ``r = i // n`` is an image under that repeat's augmentation, so every repeat sees a
    different random crop/flip/colour. Full repeats cover every image once; when
    ``samples_per_epoch`` is not a multiple of ``n``, the last, partial repeat takes its images in
    a seeded per-epoch permutation (docs/design.md §1), not always the first files (which are
    sorted by city). The whole epoch stays reproducible from (seed, epoch).
    """

    def __init__(self, base: Dataset, samples_per_epoch: int | None = None, seed: int = 0) -> None:
        self.base = base
        self.n = len(base)
        if self.n == 0:
            raise ValueError("the training dataset is empty")
        if samples_per_epoch is not None and samples_per_epoch < 1:
            raise ValueError(f"data.samples_per_epoch must be at least 1, got {samples_per_epoch}")
        self.length = samples_per_epoch or self.n
        self.repeats = -(-self.length // self.n)
        self.seed = seed
        self.epoch = 0
        self._order = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self._order = None

    def image_index(self, i: int) -> int:
        """Which image sample ``i`` of the current epoch shows."""
        repeat, j = divmod(i, self.n)
        if (repeat + 1) * self.n <= self.length:
            return j
        if self._order is None:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            self._order = torch.randperm(self.n, generator=g).tolist()
        return self._order[j]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        if not 0 <= i < self.length:
            raise IndexError(f"sample {i} of an epoch of {self.length}")
        repeat = i // self.n
        if hasattr(self.base, "set_epoch"):
            # each DataLoader worker owns a copy of the dataset, so setting it per item is safe
            self.base.set_epoch(self.epoch * self.repeats + repeat)
        return self.base[self.image_index(i)]


class TooManyBadSamples(RuntimeError):
    """More files than ``data.max_bad_fraction`` allows could not be read."""


def bad_sample_limit(max_fraction: float, n: int) -> int:
    """How many of ``n`` files may be unreadable: at most ``max_fraction`` of them, rounded down
    (1 bad file in 4 is 25 %, more than a 1 % limit allows; 1 in 100 is not)."""
    return int(max_fraction * n + 1e-9)  # the epsilon: 0.2 × 10 must allow 2


class _Bad:
    """What :class:`SkipBadSamples` returns for a file that cannot be read."""

    def __init__(self, message: str) -> None:
        self.message = message


class SkipBadSamples(Dataset):
    """A dataset whose unreadable samples (``DatasetError``: truncated, missing, unknown ids …)
    come back as markers that :func:`skipping_collate` drops, instead of stopping the run."""

    def __init__(self, base: Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        from ..data.errors import DatasetError

        try:
            return self.base[i]
        except DatasetError as exc:
            return _Bad(str(exc))

    def __getattr__(self, name: str):  # class_names, colors, load_raw … of the real dataset
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)


def skipping_collate(batch: list) -> tuple:
    """``(x, y, messages)``: the readable samples stacked (None when none is) and the bad files."""
    from torch.utils.data import default_collate

    good = [b for b in batch if not isinstance(b, _Bad)]
    bad = [b.message for b in batch if isinstance(b, _Bad)]
    x, y = default_collate(good) if good else (None, None)
    return x, y, bad


class SkippingLoader:
    """Iterates ``(x, y)`` like the loader it wraps, logging every skipped file and stopping with
    :class:`TooManyBadSamples` once more than ``max_fraction`` of the split's files were bad."""

    def __init__(self, loader: DataLoader, max_fraction: float, log=None) -> None:
        import sys

        self.loader = loader
        self.dataset = loader.dataset.base if isinstance(loader.dataset, SkipBadSamples) else loader.dataset
        self.sampler = loader.sampler
        self.limit = bad_sample_limit(max_fraction, len(loader.dataset))
        self.max_fraction = max_fraction
        self.skipped: list[str] = []
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for x, y, bad in self.loader:
            for message in bad:
                self.skipped.append(message)
                self.log(f"skipped a bad sample: {message}")
            if len(self.skipped) > self.limit:
                raise TooManyBadSamples(
                    f"{len(self.skipped)} unreadable samples, more than data.max_bad_fraction = "
                    f"{self.max_fraction:g} of {len(self.loader.dataset)} allows ({self.limit}); the first: "
                    f"{self.skipped[0]}. Fix the files, or allow more with --max-bad-fraction F (data.max_bad_fraction)"
                )
            if x is not None:
                yield x, y


class ResumableSampler(Sampler[int]):
    """DistributedSampler (one replica when not distributed) that can start mid-epoch.

    The order depends only on (seed, epoch), so a run resumed at step s of epoch e continues with
    exactly the batches the interrupted run would have seen.
    """

    def __init__(self, dataset: Dataset, seed: int = 0, shuffle: bool = True) -> None:
        self.inner = DistributedSampler(
            dataset,
            num_replicas=dist_utils.world_size(),
            rank=dist_utils.rank(),
            shuffle=shuffle,
            seed=seed,
            drop_last=True,
        )
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        self.inner.set_epoch(epoch)

    def set_start(self, start: int) -> None:
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return iter(list(self.inner)[self.start :])

    def __len__(self) -> int:
        return len(self.inner) - self.start


class ShardSampler(Sampler[int]):
    """Every rank takes indices rank, rank + W, … — no padding, so the union over ranks is the
    split exactly once and distributed metrics equal single-process ones."""

    def __init__(self, n: int) -> None:
        self.indices = list(range(dist_utils.rank(), n, dist_utils.world_size()))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _pin(pin_memory: str) -> bool:
    return torch.cuda.is_available() if pin_memory == "auto" else str(pin_memory).lower() == "true"


def make_train_loader(
    dataset: Dataset,
    batch_size: int,
    num_workers: int,
    seed: int,
    pin_memory: str = "auto",
    skip_bad: float | None = None,
) -> tuple[DataLoader, ResumableSampler]:
    """The training loader; ``skip_bad`` (a fraction) skips unreadable files up to that share."""
    sampler = ResumableSampler(dataset, seed=seed)
    if len(sampler) < batch_size:
        raise ValueError(
            f"the training set yields {len(sampler)} samples per process, fewer than one "
            f"batch of {batch_size}: lower train.batch_size or add data"
        )
    # Its own generator: creating an iterator then never draws from the global RNG, so a run
    # resumed mid-epoch consumes random numbers exactly as the uninterrupted run did.
    loader = DataLoader(
        SkipBadSamples(dataset) if skip_bad is not None else dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=_pin(pin_memory),
        drop_last=True,
        persistent_workers=False,
        generator=torch.Generator().manual_seed(seed),
        collate_fn=skipping_collate if skip_bad is not None else None,
    )
    return (SkippingLoader(loader, skip_bad) if skip_bad is not None else loader), sampler


def make_eval_loader(
    dataset: Dataset, batch_size: int, num_workers: int, pin_memory: str = "auto", skip_bad: float | None = None
) -> DataLoader:
    """The evaluation loader (every rank its shard, no padding); ``skip_bad`` as for training."""
    loader = DataLoader(
        SkipBadSamples(dataset) if skip_bad is not None else dataset,
        batch_size=batch_size,
        sampler=ShardSampler(len(dataset)),
        num_workers=num_workers,
        pin_memory=_pin(pin_memory),
        collate_fn=skipping_collate if skip_bad is not None else None,
    )
    return SkippingLoader(loader, skip_bad) if skip_bad is not None else loader
