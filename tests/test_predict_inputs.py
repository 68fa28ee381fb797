"""``phgmm predict`` inputs: nested folders (sub-paths kept), quoted globs, videos, clear errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from support import write_image

from phgmm.cli import main
from phgmm.data.errors import DatasetError
from phgmm.engine.inference.inputs import IMAGE_SUFFIXES, collect_inputs
from phgmm.engine.inference.pipeline import predict_paths
from phgmm.engine.inference.predictor import Predictor

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def nested(tmp_path) -> Path:
    root = tmp_path / "data"
    write_image(root / "cityA" / "img1.png", 1)
    write_image(root / "cityB" / "img1.png", 2)
    write_image(root / "cityB" / "deeper" / "img2.png", 3, size=(80, 40))
    write_image(root / "top.jpg", 4)
    (root / "notes.txt").write_text("not an image")
    write_image(root / ".hidden" / "skip.png", 5)
    return root


def _rel(folder: Path, pattern: str = "*.png") -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob(pattern))


def test_nested_folder_keeps_sub_paths(checkpoint, nested, tmp_path):
    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(checkpoint),
                str(nested),
                "--out",
                str(out),
                "--no-progress",
                "--batch",
                "2",
                "--workers",
                "2",
            ]
        )
        == 0
    )
    expected = ["cityA/img1.png", "cityB/deeper/img2.png", "cityB/img1.png", "top.png"]
    for folder in ("labels", "color"):
        assert _rel(out / folder) == expected, folder
    assert _rel(out / "overlay", "*.jpg") == [name.replace(".png", ".jpg") for name in expected]
    from PIL import Image

    lab = Image.open(out / "labels" / "cityB" / "deeper" / "img2.png")
    assert lab.mode == "L" and lab.size == (80, 40)
    # the overlay is the image and the colour mask half and half, JPEG-encoded
    over = Image.open(out / "overlay" / "cityB" / "deeper" / "img2.jpg")
    assert over.format == "JPEG" and over.size == (80, 40)
    from phgmm.data.imageio import load_image

    blend = (
        load_image(nested / "cityB" / "deeper" / "img2.png").astype(np.float32)
        + np.asarray(Image.open(out / "color" / "cityB" / "deeper" / "img2.png").convert("RGB"), np.float32)
    ) / 2

    # JPEG keeps each 8×8 block's mean colour (the test images are noise, whose detail it does not keep)
    def blocks(a: np.ndarray) -> np.ndarray:
        return a.reshape(5, 8, 10, 8, 3).mean(axis=(1, 3))

    got = np.asarray(over.convert("RGB"), np.float32)
    assert np.abs(blocks(got) - blocks(blend)).max() < 2
    assert np.abs(blocks(got) - blocks(blend / 2)).max() > 20  # not, say, a darker image
    # the labels are the predictor's argmax at the image's own size
    pred = Predictor(checkpoint=checkpoint, device="cpu")
    ref = pred.logits(load_image(nested / "cityA" / "img1.png")).argmax(1)[0].numpy()
    np.testing.assert_array_equal(np.asarray(Image.open(out / "labels" / "cityA" / "img1.png")), ref)


def test_output_folder_inside_the_input_is_not_read_back(checkpoint, nested):
    out = nested / "pred"
    for extra in ([], ["--overwrite"]):
        assert (
            main(["predict", "--checkpoint", str(checkpoint), str(nested), "--out", str(out), "--no-progress", *extra])
            == 0
        )
        assert len(_rel(out / "labels")) == 4


def test_quoted_glob_is_expanded_by_phgmm(checkpoint, nested, tmp_path):
    out = tmp_path / "out"
    assert (
        main(["predict", "--checkpoint", str(checkpoint), f"{nested}/**/*.png", "--out", str(out), "--no-progress"])
        == 0
    )
    assert _rel(out / "labels") == ["cityA/img1.png", "cityB/deeper/img2.png", "cityB/img1.png"]
    items = collect_inputs([f"{nested}/city*/img1.png"])
    assert [i.name for i in items] == ["cityA/img1", "cityB/img1"]
    assert [i.name for i in collect_inputs([nested / "top.jpg"])] == ["top"]
    # the same file reached twice is predicted once
    assert len(collect_inputs([nested, f"{nested}/**/*.png"])) == 4


def _video(path: Path, frames: int = 5, size=(96, 48), fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()
    return path


def _read_video(path: Path) -> tuple[int, float, tuple[int, int]]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    n = 0
    while cap.read()[0]:
        n += 1
    fps = cap.get(cv2.CAP_PROP_FPS)
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    cap.release()
    return n, fps, size


def test_video_gives_an_overlay_video_and_per_frame_labels(checkpoint, tmp_path):
    clip = _video(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(checkpoint),
                str(clip),
                "--out",
                str(out),
                "--no-progress",
                "--save-frames",
                "--batch",
                "2",
            ]
        )
        == 0
    )
    n, fps, size = _read_video(out / "overlay" / "clip.mp4")
    assert (n, fps, size) == (5, 10.0, (96, 48))
    assert _rel(out / "labels") == [f"clip/{i:06d}.png" for i in range(5)]
    assert not list((out / "overlay").glob(".*"))  # the temporary file was renamed
    # without --save-frames: the video only
    out2 = tmp_path / "out2"
    assert main(["predict", "--checkpoint", str(checkpoint), str(clip), "--out", str(out2), "--no-progress"]) == 0
    assert _read_video(out2 / "overlay" / "clip.mp4")[0] == 5 and _rel(out2 / "labels") == []


def test_video_uncertainty_maps_per_frame(checkpoint, tmp_path):
    clip = _video(tmp_path / "clip.avi", frames=2)
    out = tmp_path / "out"
    pred = Predictor(checkpoint=checkpoint, device="cpu")
    with pytest.raises(ValueError, match="add --save-frames"):
        predict_paths(pred, [clip], out, uncertainty=True, samples=2, progress=False)
    predict_paths(pred, [clip], out, uncertainty=True, samples=2, progress=False, save_frames=True)
    assert _rel(out / "mi") == ["clip/000000.png", "clip/000001.png"]
    assert np.load(out / "entropy" / "clip" / "000001.npy").shape == (48, 96)


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_bad_inputs_are_one_line_errors(checkpoint, nested, tmp_path, capsys):
    base = ["predict", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out"), "--no-progress"]
    missing = tmp_path / "nope.png"
    assert f"{missing}: no such image, video or folder" in _error(capsys, base + [str(missing)])
    assert "notes.txt: neither an image" in _error(capsys, base + [str(nested / "notes.txt")])
    assert "the pattern matches no image or video files" in _error(capsys, base + [f"{nested}/**/*.bmp"])
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video" * 10)
    assert f"{bad}: cannot read the video" in _error(capsys, base + [str(bad)])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "folder holds no images or videos" in _error(capsys, base + [str(empty)])
    # two inputs that would write the same output
    assert "would both write labels/img1.png" in _error(
        capsys, base + [str(nested / "cityA"), str(nested / "cityB" / "img1.png")]
    )


def test_image_suffixes_are_the_data_layers():
    from phgmm.data.imageio import IMAGE_EXTENSIONS

    assert IMAGE_SUFFIXES is IMAGE_EXTENSIONS


def test_skip_bad_samples_skips_unreadable_images_and_still_stops_beyond_the_limit(checkpoint, tmp_path, capsys):  # noqa: F811
    from phgmm.cli import main

    folder = tmp_path / "imgs"
    for i in range(3):
        write_image(folder / f"ok{i}.png", seed=i)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    assert (
        main(["predict", "--checkpoint", str(checkpoint), str(folder), "--out", str(tmp_path / "a"), "--no-progress"])
        == 2
    )
    assert "broken.png" in capsys.readouterr().err
    # the flag's limit is 1 % of the files: 1 bad file in 4 is more than that
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(checkpoint),
                str(folder),
                "--out",
                str(tmp_path / "b"),
                "--no-progress",
                "--skip-bad-samples",
            ]
        )
        == 2
    )
    assert "1 unreadable images, more than 1% of 4 allows (0)" in capsys.readouterr().err
    from phgmm.engine.inference.pipeline import predict_paths
    from phgmm.engine.inference.predictor import Predictor

    predictor = Predictor(checkpoint)
    predict_paths(predictor, [folder], tmp_path / "c", progress=False, skip_bad=0.25)  # 1 in 4 allowed
    err = capsys.readouterr().err
    assert "skipped a bad image" in err and "broken.png" in err and "skipped 1 unreadable" in err
    assert sorted(p.name for p in (tmp_path / "c" / "labels").glob("*.png")) == ["ok0.png", "ok1.png", "ok2.png"]
    (folder / "broken2.png").write_bytes(b"")
    with pytest.raises(DatasetError, match="2 unreadable images, more than 25% of 5 allows"):
        predict_paths(predictor, [folder], tmp_path / "d", progress=False, skip_bad=0.25)


def test_opencv_runs_one_thread_during_predict_and_is_restored(checkpoint, nested, tmp_path, monkeypatch):
    # the reader/writer threads are the parallelism; OpenCV's own pool would fight the model's threads
    from phgmm.engine.inference import outputs

    seen: list[int] = []
    real = outputs.Outputs.image

    def image(self, *args):
        seen.append(cv2.getNumThreads())
        return real(self, *args)

    monkeypatch.setattr(outputs.Outputs, "image", image)
    before = cv2.getNumThreads()
    cv2.setNumThreads(3)
    try:
        predictor = Predictor(checkpoint=checkpoint, device="cpu")
        predict_paths(predictor, [nested], tmp_path / "out", progress=False)
        assert seen == [1] * 4 and cv2.getNumThreads() == 3
        (nested / "cityA" / "zz_broken.png").write_bytes(b"not a png")  # a run that fails midway
        with pytest.raises(DatasetError, match="zz_broken.png"):
            predict_paths(predictor, [nested], tmp_path / "out2", progress=False)
        assert cv2.getNumThreads() == 3
    finally:
        cv2.setNumThreads(before)
