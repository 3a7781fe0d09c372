"""predict: images, folders and videos in; colorized disparity and depth arrays out."""
import numpy as np
import pytest

from fadepth.predict import colorize, iter_frames


def test_colorize_maps_near_to_bright():
    disp = np.linspace(0, 1, 100, dtype=np.float32).reshape(10, 10)
    rgb = colorize(disp)
    assert rgb.shape == (10, 10, 3) and rgb.dtype == np.uint8
    assert rgb[-1, -1].sum() > rgb[0, 0].sum()


def test_iter_frames_reads_folders_and_videos(tmp_path):
    import imageio.v3 as iio
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.full((8, 12, 3), i * 100, np.uint8)).save(folder / f"{i:03d}.png")
    video = tmp_path / "clip.mp4"
    iio.imwrite(video, (np.random.rand(3, 32, 48, 3) * 255).astype(np.uint8), fps=5)
    frames = list(iter_frames([folder, video]))
    assert [f.name for f in frames] == ["000", "001", "clip_000000", "clip_000001", "clip_000002"]
    assert frames[-1].rgb.shape == (32, 48, 3)


def test_iter_frames_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png"):
        list(iter_frames([tmp_path / "missing.png"]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no images"):
        list(iter_frames([tmp_path / "empty"]))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="unsupported input type"):
        list(iter_frames([tmp_path / "notes.txt"]))
