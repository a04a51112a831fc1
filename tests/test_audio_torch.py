"""Torch input: dtypes, requires_grad, non-contiguous views, integer scale, batches and CUDA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from musicstore.audio import as_audio, as_audio_batch, export_audio, export_batch
from musicstore.errors import InvalidAudio

torch = pytest.importorskip("torch")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
RATE = 32_000


def clip() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((2, RATE)) * 0.1).astype(np.float32)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_float_dtypes(dtype: str) -> None:
    tensor = torch.linspace(-0.5, 0.5, 1000, dtype=getattr(torch, dtype)).reshape(2, 500)
    out = as_audio(tensor)
    assert out.dtype == np.float32 and out.shape == (2, 500)
    np.testing.assert_allclose(out, tensor.float().numpy(), atol=1e-7)


def test_requires_grad_and_non_contiguous() -> None:
    frames_first = torch.rand(500, 2, requires_grad=True)
    view = frames_first.T  # (2, 500), not contiguous
    assert not view.is_contiguous()
    out = as_audio(view)
    np.testing.assert_array_equal(out, frames_first.detach().numpy().T)
    assert out.flags.c_contiguous


def test_integer_tensor_needs_scale() -> None:
    tensor = torch.full((1, 10), 16384, dtype=torch.int16)
    with pytest.raises(InvalidAudio):
        as_audio(tensor)
    np.testing.assert_array_equal(as_audio(tensor, scale=32768), np.full((1, 10), 0.5, dtype=np.float32))


def test_nan_tensor_rejected() -> None:
    tensor = torch.zeros(2, 100)
    tensor[1, 7] = float("nan")
    with pytest.raises(InvalidAudio, match="channel 1, sample 7"):
        as_audio(tensor)


def test_export_tensor_batch(tmp_path: Path) -> None:
    batch = torch.from_numpy(np.stack([clip(), clip() * 0.5])).to(torch.float16)
    results = export_batch(batch, RATE, [tmp_path / "a.wav", tmp_path / "b.flac"])
    assert [r.path.name for r in results] == ["a.wav", "b.flac"]
    assert all(r.target_reached for r in results)


@needs_cuda
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_cuda_tensor(dtype: str, tmp_path: Path) -> None:
    tensor = torch.from_numpy(clip()).to("cuda", getattr(torch, dtype)).requires_grad_(True)
    result = export_audio(tensor[:, ::2], RATE, tmp_path / "cuda.wav")
    assert result.target_reached and result.frames == tensor.shape[1] // 2


@needs_cuda
def test_cuda_batch_nan_rejected_before_writing(tmp_path: Path) -> None:
    batch = torch.zeros(3, 2, 1000, device="cuda")
    batch[2, 0, 5] = float("inf")
    with pytest.raises(InvalidAudio, match="item 2, channel 0, sample 5"):
        export_batch(batch, RATE, [tmp_path / f"{i}.wav" for i in range(3)])
    assert list(tmp_path.iterdir()) == []


@needs_cuda
def test_cuda_handoffs_keep_their_own_host_buffers() -> None:
    """Pinned host buffers are reused only once freed: a live array never changes under a later hand-off."""
    first = torch.rand(4, 2, 48_000, device="cuda", dtype=torch.bfloat16) - 0.5
    second = torch.rand(4, 2, 48_000, device="cuda", dtype=torch.bfloat16) - 0.5
    a = as_audio_batch(first)
    b = as_audio_batch(second.transpose(1, 2).contiguous().transpose(1, 2))  # strided on the device
    del second
    c = as_audio_batch(torch.zeros(4, 2, 48_000, device="cuda"))
    np.testing.assert_array_equal(a, first.float().cpu().numpy())
    assert not np.shares_memory(a, b) and not np.shares_memory(b, c) and not c.any()
