"""Image decoding: high bit depths are scaled, not clipped; unsupported modes and decompression bombs are refused."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medattn_monai.data import (
    ImageClassificationDataset,
    LoadResizeImaged,
    PrepareBatch,
    load_datalist,
    load_image_uint8,
    make_dataloader,
    split_items,
)
from medattn_monai.errors import DataError

SIZE = 32
# a horizontal ramp over the whole 16-bit range: 0 .. 65535 in SIZE steps
RAMP16 = np.tile(np.linspace(0, 65535, SIZE).round().astype(np.uint16), (SIZE, 1))
EXPECTED = np.tile(np.linspace(0, 255, SIZE).round(), (SIZE, 1))


def _png_rgb16(path: Path, rgb: np.ndarray) -> Path:
    """Write a 48-bit RGB PNG by hand (Pillow writes no 16-bit RGB)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))
    return path


def _grey16(tmp_path: Path, suffix: str) -> Path:
    path = tmp_path / f"ramp16{suffix}"
    Image.fromarray(RAMP16).save(path)
    return path


@pytest.mark.parametrize("suffix, mode", [(".png", "I;16"), (".tif", "I;16"), (".pgm", "I")])
def test_16_bit_grey_is_scaled_not_clipped(tmp_path, suffix, mode):
    path = _grey16(tmp_path, suffix)
    assert Image.open(path).mode == mode
    x = load_image_uint8(str(path), SIZE)
    assert x.shape == (3, SIZE, SIZE) and x.dtype == torch.uint8
    # before: every value above 255 was clipped, the ramp decoded to a mean of 254.5 (near white)
    assert np.abs(x[0].numpy() - EXPECTED).max() <= 1
    assert abs(x.float().mean().item() - 127.5) < 0.5
    assert torch.equal(load_image_uint8(str(path), SIZE, channels=1)[0], x[0])


def test_16_bit_rgb_png(tmp_path):
    rgb = np.stack([RAMP16, RAMP16[:, ::-1], np.full_like(RAMP16, 32768)], axis=-1)
    x = load_image_uint8(str(_png_rgb16(tmp_path / "rgb16.png", rgb)), SIZE).numpy()
    assert np.abs(x[0] - EXPECTED).max() <= 1 and np.abs(x[1] - EXPECTED[:, ::-1]).max() <= 1
    assert np.abs(x[2] - 128).max() <= 1


@pytest.mark.parametrize("array, mode", [(np.full((8, 8), 0.5, np.float32), "F"),
                                         (np.full((8, 8), 70000, np.int32), "I")])
def test_modes_without_a_defined_range_are_refused_naming_file_and_mode(tmp_path, array, mode):
    path = tmp_path / f"odd_{mode}.tif"
    Image.fromarray(array).save(path)
    with pytest.raises(DataError, match=rf"image .*odd_{mode}\.tif has Pillow mode '{mode}' \(TIFF\)"):
        load_image_uint8(str(path), SIZE)


@pytest.mark.parametrize("side", [40, 64])  # 1600 pixels: Pillow warns; 4096: Pillow raises
def test_decompression_bomb_is_a_data_error_naming_the_file(tmp_path, monkeypatch, side):
    path = tmp_path / "big.png"
    Image.new("RGB", (side, side)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(DataError, match=r"image .*big\.png is too large to decode: .*exceeds limit"):
        load_image_uint8(str(path), SIZE)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    assert load_image_uint8(str(path), SIZE).shape == (3, SIZE, SIZE)


def test_a_16_bit_png_trains_on_correctly_scaled_pixels(tmp_path):
    """The training path: datalist -> RAM-cached dataset -> loader -> PrepareBatch (the network's input)."""
    (tmp_path / "images").mkdir()
    items = []
    for i, level in enumerate((0, 16384, 32768, 65535)):
        Image.fromarray(np.full((SIZE, SIZE), level, np.uint16)).save(tmp_path / "images" / f"{i}.png")
        items.append({"image": f"images/{i}.png", "label": i % 2})
    Image.fromarray(RAMP16).save(tmp_path / "images" / "ramp.png")
    items.append({"image": "images/ramp.png", "label": 0})
    (tmp_path / "datalist.json").write_text(json.dumps({"classes": ["a", "b"], "training": items}))
    data = split_items(load_datalist(tmp_path / "datalist.json"), "training", tmp_path)
    dataset = ImageClassificationDataset(data, LoadResizeImaged("image", SIZE), (3, SIZE, SIZE), cache="ram",
                                         progress=False, name="training")
    batch = next(iter(make_dataloader(dataset, batch_size=len(items))))
    x, _ = PrepareBatch(mean=(0, 0, 0), std=(1, 1, 1))(batch)
    means = x.mean(dim=(1, 2, 3)).tolist()
    assert means == pytest.approx([0.0, 0.25, 0.5, 1.0, 0.5], abs=0.003)


def test_a_worker_forked_while_another_thread_opens_an_image_can_open_images(tmp_path):
    # DataLoader workers are forked while the cache-filling threads decode: a lock held at the fork must not
    # leave the worker waiting for it forever
    import multiprocessing

    from PIL import Image

    from medattn_monai.data import transforms

    path = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(path)
    with transforms._OPEN_LOCK:  # another thread is inside Image.open at the moment of the fork
        child = multiprocessing.get_context("fork").Process(target=transforms.load_image_uint8, args=(str(path), 8))
        child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0, "the forked worker could not open an image (it waited for a lock held at the fork)"
