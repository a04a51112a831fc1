"""Audio export: tensors and arrays to loudness-normalized, true-peak-safe WAV/FLAC files; renditions
(MP3, Opus, Vorbis, FLAC) verified after encoding; loudness profiles; waveform peaks.

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
from musicstore.audio.peaks import WaveformPeaks, compute_peaks, file_peaks
from musicstore.audio.profiles import PROFILES, LoudnessProfile, get_profile
from musicstore.audio.renditions import (
    RenditionOptions,
    RenditionResult,
    RenditionSpec,
    render_audio,
    render_file,
)
from musicstore.audio.synth import click_track, synthesize_music
from musicstore.audio.tags import Provenance
from musicstore.audio.truepeak import true_peak

__all__ = [
    "PROFILES",
    "AudioInfo",
    "ExportOptions",
    "ExportResult",
    "Loudness",
    "LoudnessProfile",
    "LoudnessStatus",
    "Provenance",
    "RenditionOptions",
    "RenditionResult",
    "RenditionSpec",
    "StageTimings",
    "WaveformPeaks",
    "analyze_audio",
    "analyze_file",
    "as_audio",
    "as_audio_batch",
    "check_sample_rate",
    "click_track",
    "compute_peaks",
    "estimate_tempo",
    "export_audio",
    "export_batch",
    "file_peaks",
    "get_profile",
    "integrated_loudness",
    "layout_path",
    "render_audio",
    "render_file",
    "synthesize_music",
    "true_peak",
]
