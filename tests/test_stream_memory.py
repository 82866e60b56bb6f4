"""Streaming a split keeps resident memory flat: nothing accumulates per image read (full Camelyon17 streams)."""

from __future__ import annotations

import gc

import pytest

from medattn_monai.data import ImageClassificationDataset, LoadResizeImaged, load_datalist, make_dataloader, split_items


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmRSS")


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="needs /proc (Linux)")
def test_auto_cache_streams_a_split_beyond_the_budget_with_flat_memory(demo_data):
    datalist = load_datalist(demo_data.root / "camelyon17_datalist.json")
    items = [item for split in ("training", "val_ood", "test_ood")
             for item in split_items(datalist, split, demo_data.root / "camelyon17")]
    # 5 passes over the demo patches: 2400 reads, 66 MB if decoded images were kept
    data = [dict(item, index=i) for i, item in enumerate(items * 5)]
    dataset = ImageClassificationDataset(data, LoadResizeImaged("image", 96), (3, 96, 96), cache="auto",
                                         cache_budget=1e-9, progress=False, name="big")
    assert dataset.cache == "stream"
    loader = make_dataloader(dataset, batch_size=64, num_workers=0)
    warm_up = ImageClassificationDataset(data[:64], LoadResizeImaged("image", 96), (3, 96, 96), cache="stream",
                                         progress=False)
    next(iter(make_dataloader(warm_up, batch_size=64, num_workers=0)))  # decoders and allocator, once
    gc.collect()
    before = _rss_bytes()
    peak = before
    for step, batch in enumerate(loader):
        assert batch["image"].shape[1:] == (3, 96, 96)
        if step % 8 == 0:
            gc.collect()
            peak = max(peak, _rss_bytes())
    growth_mb = (peak - before) / 2**20
    # a RAM cache of the same items would take 66 MB
    assert growth_mb < 25, f"resident memory grew by {growth_mb:.0f} MB while streaming {len(data)} images"
