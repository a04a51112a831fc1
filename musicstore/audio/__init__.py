"""Audio export: tensors and arrays to loudness-normalized, true-peak-safe WAV/FLAC files.

No database code here; torch is imported only when a tensor is given.
"""

from musicstore.audio.analysis import AudioInfo, analyze_audio, analyze_file, estimate_tempo
from musicstore.audio.arrays import as_audio, as_audio_batch, check_sample_rate
from musicstore.audio.export import (
    ExportOptions,
    ExportResult,
    LoudnessStatus,
    StageTimings,
    export_audio,
    export_batch,
)
from musicstore.audio.files import layout_path
from musicstore.audio.loudness import Loudness, integrated_loudness
from musicstore.audio.synth import click_track, synthesize_music
from musicstore.audio.truepeak import true_peak

__all__ = [
    "AudioInfo",
    "ExportOptions",
    "ExportResult",
    "Loudness",
    "LoudnessStatus",
    "StageTimings",
    "analyze_audio",
    "analyze_file",
    "as_audio",
    "as_audio_batch",
    "check_sample_rate",
    "click_track",
    "estimate_tempo",
    "export_audio",
    "export_batch",
    "integrated_loudness",
    "layout_path",
    "synthesize_music",
    "true_peak",
]
