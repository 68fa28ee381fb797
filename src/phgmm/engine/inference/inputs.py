"""The inputs of ``phgmm predict``: image and video files, folders (searched recursively; the path
below the folder is kept in the output names, so ``cityA/img1.png`` and ``cityB/img1.png`` give
``labels/cityA/img1.png`` and ``labels/cityB/img1.png``) and glob patterns expanded here
(``"data/**/*.png"``, recursive; names keep the path below the pattern's fixed leading folders).
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ...data.errors import DatasetError
from ...data.imageio import IMAGE_EXTENSIONS

__all__ = ["InputFile", "collect_inputs", "collect_images", "check_unique_names", "IMAGE_SUFFIXES", "VIDEO_EXTENSIONS"]

#: image suffixes (an alias of :data:`phgmm.data.imageio.IMAGE_EXTENSIONS`, kept for older imports)
IMAGE_SUFFIXES = IMAGE_EXTENSIONS
#: video suffixes ``phgmm predict`` reads with OpenCV (frames → an overlay video)
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv")

_GLOB_MAGIC = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class InputFile:
    """One input: its path, its output name (a relative POSIX path without suffix, e.g.
    ``"cityA/img1"``: outputs go to ``labels/cityA/img1.png``…) and whether it is a video."""

    path: Path
    name: str
    video: bool = False


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_EXTENSIONS else ("video" if suffix in VIDEO_EXTENSIONS else None)


def _strip(rel: PurePosixPath) -> str:
    return str(rel.with_name(rel.name[: -len(rel.suffix)] if rel.suffix else rel.name))


def _inside(path: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    try:
        path.resolve().relative_to(folder)
        return True
    except ValueError:
        return False


def _walk(folder: Path, prefix: PurePosixPath, exclude: Path | None) -> list[InputFile]:
    """Images and videos under ``folder`` (recursive; hidden folders and ``exclude`` skipped)."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _inside(Path(root, d), exclude))
        for f in files:
            p = Path(root, f)
            kind = _kind(p)
            if kind is not None and not f.startswith("."):
                rel = prefix / PurePosixPath(p.relative_to(folder).as_posix())
                found.append(InputFile(p, _strip(rel), kind == "video"))
    return sorted(found, key=lambda i: i.name)


def _glob_base(pattern: str) -> Path:
    """The leading folders of a glob pattern that hold no wildcard (``data/**/*.png`` → ``data``)."""
    base = []
    for part in Path(pattern).parts:
        if _GLOB_MAGIC.search(part):
            break
        base.append(part)
    return Path(*base) if base else Path(".")


def _suffixes() -> str:
    return ", ".join(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)


def collect_inputs(inputs: Iterable[str | os.PathLike], exclude: str | os.PathLike | None = None) -> list[InputFile]:
    """The images and videos named by ``inputs``: files, folders (recursive) and glob patterns.

    Output names: a file named directly keeps its stem; a file found in a folder keeps its path
    below that folder; a glob match keeps its path below the pattern's fixed leading folders.
    ``exclude`` (the output folder) is never searched. A file reached twice is listed once.
    Raises ``FileNotFoundError`` / :class:`~phgmm.data.errors.DatasetError` naming the input.
    """
    skip = Path(exclude).resolve() if exclude is not None else None
    items: list[InputFile] = []
    seen: set[Path] = set()

    def add(new: Iterable[InputFile]) -> int:
        n = 0
        for item in new:
            key = item.path.resolve()
            if key not in seen:
                seen.add(key)
                items.append(item)
                n += 1
        return n

    for raw in inputs:
        text = os.fspath(raw)
        p = Path(text)
        if p.is_dir():
            found = _walk(p, PurePosixPath(), skip)
            if not found:
                raise FileNotFoundError(
                    f"{p}: folder holds no images or videos ({_suffixes()}), not even in its sub-folders"
                )
            add(found)
        elif p.is_file():
            kind = _kind(p)
            if kind is None:
                raise DatasetError(
                    f"{p}: neither an image ({', '.join(IMAGE_EXTENSIONS)}) nor a video "
                    f"({', '.join(VIDEO_EXTENSIONS)}) by its suffix"
                )
            add([InputFile(p, p.stem if p.suffix else p.name, kind == "video")])
        elif _GLOB_MAGIC.search(text):
            base = _glob_base(text)
            found = []
            for m in sorted(glob.glob(text, recursive=True)):
                mp = Path(m)
                if _inside(mp, skip):
                    continue
                rel = PurePosixPath(Path(os.path.relpath(mp, base)).as_posix())
                if mp.is_dir():
                    found += _walk(mp, rel if str(rel) != "." else PurePosixPath(), skip)
                elif _kind(mp) is not None:
                    found.append(InputFile(mp, _strip(rel), _kind(mp) == "video"))
            if not found:
                raise FileNotFoundError(f"{text}: the pattern matches no image or video files ({_suffixes()})")
            add(found)
        else:
            raise FileNotFoundError(f"{p}: no such image, video or folder (and not a glob pattern)")
    return items


def collect_images(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """The image files of :func:`collect_inputs` (videos left out), in order."""
    return [item.path for item in collect_inputs(inputs) if not item.video]


def check_unique_names(items: Sequence[InputFile]) -> None:
    """Refuse two inputs that would write the same output file, naming both inputs and the file.

    An image writes ``labels/<name>.png`` (and ``color/``, ``overlay/<name>.jpg``), a video
    ``overlay/<name>.mp4`` (and ``labels/<name>/`` frames): two of a kind with one name clash; an
    image and a video of the same name do not."""
    first: dict[str, Path] = {}
    for item in items:
        target = f"overlay/{item.name}.mp4" if item.video else f"labels/{item.name}.png"
        if target in first:
            raise ValueError(
                f"{first[target]} and {item.path} would both write {target}; "
                f"rename one, or pass the folder above them so that their sub-paths tell them apart"
            )
        first[target] = item.path
