"""TAU list reading, the clip cache and CropDataset, on small real media files written here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

import training.data.cache as cache_mod
from avstream.scenes import SCENES
from training.config import SMALL
from training.data.cache import build_cache, cache_subdir
from training.data.datasets import CropDataset
from training.data.tau import ClipRow, read_tau_csv, read_tau_split
from training.errors import CacheError, DataError
from training.synth.dataset import write_clip_files, write_video_mp4

RATE = 16_000
PX = 32
CFG = SMALL.replace(frame_size=PX)  # SMALL's 16 kHz audio with 32-px frames: a tiny cache
HEADER = "filename_audio\tfilename_video\tscene_label"


def _line(stem: str, label: str | None) -> str:
    cells = [f"audio/{stem}.wav", f"video/{stem}.mp4"] + ([label] if label is not None else [])
    return "\t".join(cells)


def _write_list(
    root: Path,
    name: str,
    rows: list[tuple[str, str | None]],
    header: str = HEADER,
    newline: str = "\n",
) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(newline.join([header] + [_line(s, lab) for s, lab in rows]).encode() + b"\n")
    return path


def _touch_media(root: Path, stem: str) -> None:
    for sub, ext in (("audio", "wav"), ("video", "mp4")):
        (root / sub).mkdir(parents=True, exist_ok=True)
        (root / sub / f"{stem}.{ext}").write_bytes(b"")


def _real_clip(root: Path, stem: str, scene: str, seconds: float, seed: int = 0) -> ClipRow:
    audio, video = root / "audio" / f"{stem}.wav", root / "video" / f"{stem}.mp4"
    write_clip_files(
        audio,
        video,
        scene,
        seconds,
        np.random.default_rng([seed, 1]),
        np.random.default_rng([seed, 2]),
        width=64,
        height=48,
        fps=10,
        sample_rate=RATE,
    )
    return ClipRow(stem=stem, audio_path=audio, video_path=video, label=scene)


def _timecode_clip(root: Path, stem: str, seconds: int, label: str = "park") -> ClipRow:
    """Audio and video that both say which 0.2-s block they are in: block k has audio level
    (k + 1) / 64 (exact in 24-bit PCM and float16) and frame gray level 20 + 4 k."""
    blocks = seconds * 5
    per_block = RATE // 5
    level = (np.arange(blocks) + 1) / 64.0
    audio = np.repeat(level, per_block).astype(np.float32)
    audio_path = root / "audio" / f"{stem}.wav"
    audio_path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(audio_path, np.stack([audio, audio]).T, RATE, subtype="PCM_24")
    frames = np.stack([np.full((48, 64, 3), 20 + 4 * k, np.uint8) for k in range(blocks)])
    video_path = root / "video" / f"{stem}.mp4"
    video_path.parent.mkdir(parents=True, exist_ok=True)
    write_video_mp4(video_path, frames, fps=5)
    return ClipRow(stem=stem, audio_path=audio_path, video_path=video_path, label=label)


# ----------------------------------------------------------------------------- TAU lists


def test_read_split_gives_typed_rows_with_absolute_paths(tmp_path: Path) -> None:
    stems = [("airport-lisbon-1000-40000", "airport"), ("tram-paris-12-3", "tram")]
    for stem, _ in stems:
        _touch_media(tmp_path, stem)
    _write_list(tmp_path, "evaluation_setup/fold1_train.csv", stems)
    split = read_tau_split(tmp_path, "train")
    assert [r.stem for r in split.rows] == [s for s, _ in stems]
    assert split.rows[0].audio_path == tmp_path / "audio" / "airport-lisbon-1000-40000.wav"
    assert split.rows[0].video_path == tmp_path / "video" / "airport-lisbon-1000-40000.mp4"
    assert [r.label for r in split.rows] == ["airport", "tram"]
    assert split.report.rows == 2 and split.report.kept == 2 and split.report.n_skipped == 0


def test_missing_root_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="dataset folder .*nowhere does not exist"):
        read_tau_split(tmp_path / "nowhere", "train")


def test_missing_csv_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="fold1_evaluate.csv does not exist"):
        read_tau_split(tmp_path, "evaluate")


def test_bad_header_says_what_was_expected(tmp_path: Path) -> None:
    _write_list(tmp_path, "meta.csv", [], header="audio\tvideo\tlabel")
    with pytest.raises(DataError, match="meta.csv has header .*expected tab-separated columns"):
        read_tau_split(tmp_path, "meta")
    # comma-separated is a bad header too: the whole line is one column
    _write_list(tmp_path, "meta.csv", [], header="filename_audio,filename_video,scene_label")
    with pytest.raises(DataError, match="missing"):
        read_tau_split(tmp_path, "meta")


def test_unknown_label_names_line_and_choices(tmp_path: Path) -> None:
    _touch_media(tmp_path, "a-b-1-0")
    _write_list(tmp_path, "evaluation_setup/fold1_train.csv", [("a-b-1-0", "beach")])
    with pytest.raises(DataError, match="line 2: unknown scene label 'beach'; expected one of"):
        read_tau_split(tmp_path, "train")


def test_row_with_missing_media_is_skipped_and_counted(tmp_path: Path) -> None:
    _touch_media(tmp_path, "park-x-1-0")
    _touch_media(tmp_path, "bus-x-1-0")
    (tmp_path / "video" / "bus-x-1-0.mp4").unlink()
    rows = [("park-x-1-0", "park"), ("bus-x-1-0", "bus"), ("metro-x-1-0", "metro")]
    _write_list(tmp_path, "evaluation_setup/fold1_train.csv", rows)
    split = read_tau_split(tmp_path, "train")
    assert [r.stem for r in split.rows] == ["park-x-1-0"]
    assert split.report.rows == 3 and split.report.kept == 1
    assert split.report.counts == {"missing_video": 1, "missing_audio": 1}
    assert dict(split.report.skipped)["bus-x-1-0"].startswith("missing_video")
    assert "1 of 3 clips kept" in split.report.summary()


def test_crlf_meta_with_identifier_and_unlabelled_test_list(tmp_path: Path) -> None:
    _touch_media(tmp_path, "park-x-1-0")
    meta = tmp_path / "meta.csv"
    meta.write_bytes(
        b"filename_audio\tfilename_video\tscene_label\tidentifier\r\n"
        b"audio/park-x-1-0.wav\tvideo/park-x-1-0.mp4\tpark\tx-1\r\n"
    )
    assert read_tau_split(tmp_path, "meta").rows[0].label == "park"
    _write_list(
        tmp_path,
        "evaluation_setup/fold1_test.csv",
        [("park-x-1-0", None)],
        header="filename_audio\tfilename_video",
        newline="\r\n",
    )
    rows, report = read_tau_csv(
        tmp_path / "evaluation_setup/fold1_test.csv", tmp_path, require_label=False
    )
    assert rows[0].label is None and rows[0].stem == "park-x-1-0" and report.kept == 1


def test_row_with_wrong_field_count(tmp_path: Path) -> None:
    path = tmp_path / "meta.csv"
    path.write_text(HEADER + "\naudio/a.wav\tvideo/a.mp4\n")
    with pytest.raises(DataError, match="line 2 has 2 tab-separated fields; expected 3"):
        read_tau_split(tmp_path, "meta")


# ----------------------------------------------------------------------------- cache


def test_cache_build_layout_shapes_and_lengths(tmp_path: Path) -> None:
    rows = [
        _real_clip(tmp_path / "data", "park-c-1-0", "park", 2.0),
        _real_clip(tmp_path / "data", "bus-c-1-0", "bus", 3.5, seed=1),
    ]
    cache = build_cache(rows, tmp_path / "cache", RATE, PX, progress=False)
    assert cache.directory == cache_subdir(tmp_path / "cache", RATE, PX)
    assert cache.directory.name == f"sr{RATE}_px{PX}"
    assert [(c.stem, c.label_index, c.seconds) for c in cache.clips] == [
        ("park-c-1-0", SCENES.index("park"), 2),
        ("bus-c-1-0", SCENES.index("bus"), 3),  # 3.5 s -> 3 whole seconds
    ]
    audio, frames = cache.audio(1), cache.frames(1)
    assert audio.shape == (2, 3 * RATE) and audio.dtype == np.float16
    assert frames.shape == (15, PX, PX, 3) and frames.dtype == np.uint8
    assert isinstance(audio, np.memmap) and not audio.flags.writeable
    assert 0.001 < float(np.abs(audio.astype(np.float32)).mean()) < 1.0
    index = json.loads((cache.directory / "index.json").read_text())
    assert set(index["clips"]) == {"park-c-1-0", "bus-c-1-0"} and index["sample_rate"] == RATE


def test_cache_resume_decodes_only_the_missing_clip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [_real_clip(tmp_path / "data", f"tram-c-{i}-0", "tram", 1.0, seed=i) for i in range(3)]
    first = build_cache(rows, tmp_path / "cache", RATE, PX, progress=False)
    kept_inode = first.audio_path(0).stat().st_ino
    first.audio_path(1).unlink()
    first.frames_path(1).unlink()
    decoded: list[str] = []
    real = cache_mod._cache_one

    def counting(row: ClipRow, *args: object) -> object:
        decoded.append(row.stem)
        return real(row, *args)

    monkeypatch.setattr(cache_mod, "_cache_one", counting)
    again = build_cache(rows, tmp_path / "cache", RATE, PX, progress=False)
    assert decoded == ["tram-c-1-0"]
    assert again.audio_path(0).stat().st_ino == kept_inode  # untouched
    assert again.frames(1).shape == (5, PX, PX, 3)
    decoded.clear()
    build_cache(rows, tmp_path / "cache", RATE, PX, progress=False)
    assert decoded == []  # complete: nothing decoded, nothing written
    # a regenerated source is decoded again
    _real_clip(tmp_path / "data", "tram-c-2-0", "tram", 1.0, seed=7)
    build_cache(rows, tmp_path / "cache", RATE, PX, progress=False)
    assert decoded == ["tram-c-2-0"]


def test_cache_skips_and_counts_undecodable_and_short_clips(tmp_path: Path) -> None:
    data = tmp_path / "data"
    good = _real_clip(data, "park-c-1-0", "park", 1.0)
    short = _real_clip(data, "park-c-2-0", "park", 0.5)
    bad = _real_clip(data, "park-c-3-0", "park", 1.0)
    bad.video_path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    gone = _real_clip(data, "park-c-4-0", "park", 1.0)
    gone.video_path.unlink()  # vanished after the list was read
    rows = [good, short, bad, gone]
    cache = build_cache(rows, tmp_path / "cache", RATE, PX, progress=False)
    assert [c.stem for c in cache.clips] == ["park-c-1-0"]
    assert cache.report.rows == 4 and cache.report.kept == 1
    assert cache.report.counts == {"undecodable": 1, "too_short": 1, "missing_video": 1}
    reasons = dict(cache.report.skipped)
    assert "park-c-3-0.mp4" in reasons["park-c-3-0"]
    # A rerun reports the same skips without writing anything.
    again = build_cache(rows, tmp_path / "cache", RATE, PX, progress=False)
    assert again.report.counts == cache.report.counts and len(again) == 1


def test_cache_resamples_44k1_mono_and_duplicates(tmp_path: Path) -> None:
    row = _real_clip(tmp_path / "data", "bus-c-1-0", "bus", 2.0)
    t = np.arange(int(44_100 * 2.0)) / 44_100
    sf.write(row.audio_path, 0.3 * np.sin(2 * np.pi * 500 * t), 44_100, subtype="PCM_16")
    cache = build_cache([row], tmp_path / "cache", RATE, PX, progress=False)
    audio = np.asarray(cache.audio(0), dtype=np.float32)
    assert audio.shape == (2, 2 * RATE)
    np.testing.assert_array_equal(audio[0], audio[1])
    spectrum = np.abs(np.fft.rfft(audio[0]))
    assert abs(np.fft.rfftfreq(audio.shape[1], 1 / RATE)[np.argmax(spectrum)] - 500) <= 1


def test_cache_rejects_index_of_another_configuration(tmp_path: Path) -> None:
    row = _real_clip(tmp_path / "data", "bus-c-1-0", "bus", 1.0)
    cache = build_cache([row], tmp_path / "cache", RATE, PX, progress=False)
    index_path = cache.directory / "index.json"
    index = json.loads(index_path.read_text())
    index["frame_size"] = 224
    index_path.write_text(json.dumps(index))
    with pytest.raises(CacheError, match="expected .*'frame_size': 32"):
        build_cache([row], tmp_path / "cache", RATE, PX, progress=False)


# ----------------------------------------------------------------------------- CropDataset


@pytest.fixture(scope="module")
def timecode_cache(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 (ClipCache)
    root = tmp_path_factory.mktemp("timecode")
    rows = [_timecode_clip(root, "park-t-1-0", 10), _timecode_clip(root, "bus-t-1-0", 3, "bus")]
    return build_cache(rows, root / "cache", RATE, PX, progress=False)


def _blocks(item) -> tuple[list[int], list[int]]:  # noqa: ANN001
    """Block numbers seen by the item's 5 audio sub-windows and 5 frames."""
    wave, frames = item.wave.numpy(), item.frames.numpy()
    per = RATE // 5
    audio_k = [round(float(wave[0, j * per + per // 2]) * 64) - 1 for j in range(5)]
    video_k = [round((float(frames[j].mean()) - 20) / 4) for j in range(5)]
    return audio_k, video_k


def test_train_crops_are_aligned_and_span_the_whole_clip(timecode_cache) -> None:  # noqa: ANN001
    ds = CropDataset(timecode_cache, CFG.window_samples, mode="train", seed=3)
    assert len(ds) == 2
    starts = []
    for epoch in range(60):
        ds.set_epoch(epoch)
        item = ds[0]
        k = item.segment
        audio_k, video_k = _blocks(item)
        assert audio_k == video_k == list(range(k, k + 5))  # frame k <-> audio from k * 0.2 s
        starts.append(k)
    assert max(starts) * 0.2 > 0.28  # not the seed's first-0.28-s bug
    assert min(starts) >= 0 and max(starts) <= 45
    assert len(set(starts)) >= 25 and max(starts) >= 35  # spread over the whole 10-s clip
    assert 0 <= ds[1].segment <= 10  # the 3-s clip: starts 0..10


def test_eval_cuts_every_clip_into_aligned_seconds(timecode_cache) -> None:  # noqa: ANN001
    ds = CropDataset(timecode_cache, CFG, mode="eval")
    assert len(ds) == 10 + 3
    items = [ds[i] for i in range(len(ds))]
    assert [(it.clip, it.segment) for it in items] == [(0, s) for s in range(10)] + [
        (1, s) for s in range(3)
    ]
    for it in items:
        audio_k, video_k = _blocks(it)
        assert audio_k == video_k == list(range(5 * it.segment, 5 * it.segment + 5))
    first = items[0]
    assert first.wave.shape == (2, RATE) and first.wave.dtype == torch.float32
    assert first.frames.shape == (5, PX, PX, 3) and first.frames.dtype == torch.uint8
    assert first.label.dtype == torch.int64 and int(first.label) == SCENES.index("park")
    assert int(items[-1].label) == SCENES.index("bus")


def test_crops_repeat_with_the_seed_and_change_with_epoch(timecode_cache) -> None:  # noqa: ANN001
    def starts(seed: int, epoch: int) -> list[int]:
        ds = CropDataset(timecode_cache, RATE, seed=seed)
        ds.set_epoch(epoch)
        return [ds[i].segment for i in range(2)]

    assert starts(5, 0) == starts(5, 0)
    many = [tuple(starts(5, e)) for e in range(8)]
    assert len(set(many)) > 1
    assert [starts(s, 0) for s in range(6)] != [starts(5, 0)] * 6


def test_dataloader_batches_items(timecode_cache) -> None:  # noqa: ANN001
    ds = CropDataset(timecode_cache, RATE, mode="eval")
    batch = next(iter(DataLoader(ds, batch_size=4)))
    wave, frames, label, clip, segment = batch
    assert wave.shape == (4, 2, RATE) and frames.shape == (4, 5, PX, PX, 3)
    assert label.tolist() == [SCENES.index("park")] * 4 and segment.tolist() == [0, 1, 2, 3]


def test_dataset_rejects_mismatched_config_and_unlabelled_training(
    timecode_cache,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    with pytest.raises(DataError, match="expected a cache built for the config"):
        CropDataset(timecode_cache, SMALL)  # 64-px frames
    with pytest.raises(DataError, match="window_samples=48000; expected 16000"):
        CropDataset(timecode_cache, 48_000)
    row = _timecode_clip(tmp_path, "park-u-1-0", 1)
    unlabelled = build_cache(
        [ClipRow(row.stem, row.audio_path, row.video_path, None)],
        tmp_path / "cache",
        RATE,
        PX,
        progress=False,
    )
    with pytest.raises(DataError, match="no label"):
        CropDataset(unlabelled, RATE, mode="train")
    assert int(CropDataset(unlabelled, RATE, mode="eval")[0].label) == -1
