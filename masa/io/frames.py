"""Frame sources: video files, image folders, MOTChallenge sequences, cameras and network streams.

Every source is an iterable of :class:`Frame` that decodes **one frame at a time** (a video is never
held in memory), and a context manager that releases its file / device on exit::

    with open_source("video.mp4", max_frames=100) as source:
        for frame in source:          # Frame(index=0, image=uint8[H, W, 3] RGB, name="frame 0")
            ...

Conventions:

* ``Frame.index`` is 0-based. For MOTChallenge sequences it is the image number minus one
  (``img1/000001.jpg`` is index 0), so it maps straight to the 1-based frame numbers of
  ``det.txt`` / ``gt.txt`` (``frame = index + 1``).
* ``Frame.image`` is always a C-contiguous ``uint8[H, W, 3]`` **RGB** array. Grayscale images are
  replicated to three channels, the alpha channel of RGBA / gray+alpha images is dropped (not
  composited), 16-bit images are scaled to 8 bits (``value / 257``), float images are taken as
  ``[0, 1]`` when their maximum is <= 1 (else clipped to ``[0, 255]``), palette images are expanded
  by the decoder. EXIF orientation is ignored (images come out as stored).
* Frames that cannot be read (an unreadable image file, a corrupt video packet, a missing image of a
  MOT sequence) are **skipped** with a :func:`warnings.warn` and recorded in ``source.skipped`` as
  ``(index, reason)``; the following frames keep their own index, so indices always match positions
  in the input (a consumer should use ``frame.index``, never count frames itself).
* Bad inputs raise :class:`~masa.io.errors.InputError` (missing paths:
  :class:`~masa.io.errors.InputNotFoundError`, also a :class:`FileNotFoundError`) naming the input.
"""

from __future__ import annotations

import re
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from masa.io.errors import InputError, InputNotFoundError

__all__ = [
    "IMAGE_EXTENSIONS",
    "CameraSource",
    "Frame",
    "FrameSource",
    "ImageFolderSource",
    "MotSequenceSource",
    "StreamSource",
    "VideoFileSource",
    "is_url",
    "natural_sort_key",
    "open_source",
    "read_image",
    "to_rgb8",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
"""File extensions (lower case) read by :class:`ImageFolderSource` and :class:`MotSequenceSource`."""

# Give up on a video after this many consecutive unreadable packets.
_MAX_CONSECUTIVE_ERRORS = 50

_ACCEPTED = (
    "a video file (e.g. .mp4, .avi, .mkv), a folder of images (.jpg/.jpeg/.png/.bmp/.tif/.tiff/.webp), "
    "a MOTChallenge sequence folder (with seqinfo.ini or img1/), a camera index (e.g. 0) "
    "or a stream URL (e.g. rtsp://host/stream, http://host/video.mp4)"
)


@dataclass
class Frame:
    """One decoded frame.

    ``index``: 0-based position in the source. ``image``: ``uint8[H, W, 3]`` RGB, C-contiguous.
    ``name``: the image file name for image sources, ``f"frame {index}"`` for videos and streams.
    """

    index: int
    image: np.ndarray
    name: str

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


# ---------------------------------------------------------------------------------------------
# image helpers
# ---------------------------------------------------------------------------------------------


def natural_sort_key(name: str) -> tuple:
    """Sort key that orders embedded numbers by value: ``frame2`` before ``frame10`` (case-insensitive)."""
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts if p != "") + ((-1, 0, name),)


def to_rgb8(image: np.ndarray, *, bgr: bool = True) -> np.ndarray:
    """Convert a decoded image to a C-contiguous ``uint8[H, W, 3]`` RGB array.

    Accepts ``[H, W]`` gray, ``[H, W, 1]`` gray, ``[H, W, 2]`` gray+alpha, ``[H, W, 3]`` colour and
    ``[H, W, 4]`` colour+alpha, of any integer / bool / float dtype (see the module docstring for the
    bit-depth rules). ``bgr``: the colour channels are in OpenCV's BGR order (``True``) or RGB.
    Raises :class:`ValueError` for other shapes.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4) or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"expected an image of shape [H, W], [H, W, 1|2|3|4], got {list(image.shape)}")
    image = _to_uint8(image)
    channels = image.shape[2]
    if channels in (1, 2):
        image = np.repeat(image[:, :, :1], 3, axis=2)
    else:
        image = image[:, :, :3]
        if bgr:
            image = image[:, :, ::-1]
    return np.ascontiguousarray(image)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    if image.dtype == np.uint16:
        return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        values = np.nan_to_num(image.astype(np.float32), nan=0.0, posinf=255.0, neginf=0.0)
        if values.size and float(values.max()) <= 1.0:
            values = values * 255.0
        return np.clip(np.rint(values), 0, 255).astype(np.uint8)
    if np.issubdtype(image.dtype, np.integer):
        if image.dtype.itemsize > 1 and image.size and int(image.max()) > 255:
            # Deep integer images (e.g. 32-bit TIFF): keep the top 8 bits of the used range.
            shift = max(int(image.max()).bit_length() - 8, 0)
            return (np.clip(image, 0, None) >> shift).astype(np.uint8)
        return np.clip(image, 0, 255).astype(np.uint8)
    raise ValueError(f"unsupported image dtype {image.dtype}")


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as ``uint8[H, W, 3]`` RGB (see :func:`to_rgb8` for the conversions).

    Raises :class:`~masa.io.errors.InputNotFoundError` for a missing file and
    :class:`~masa.io.errors.InputError` for a file OpenCV cannot decode.
    """
    import cv2

    path = Path(path)
    try:
        # np.fromfile + imdecode instead of cv2.imread: works with non-ASCII paths on every OS.
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise InputNotFoundError(f"{path}: image file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read image file: {exc.strerror or exc}") from None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        reason = "file is empty" if data.size == 0 else "not a readable image (corrupt or unsupported format)"
        raise InputError(f"{path}: {reason}")
    try:
        return to_rgb8(image, bgr=True)
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None


def _list_images(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")]
    files = [p for p in files if p.is_file()]
    return sorted(files, key=lambda p: natural_sort_key(p.name))


# ---------------------------------------------------------------------------------------------
# base class
# ---------------------------------------------------------------------------------------------


class FrameSource(ABC):
    """Abstract source of :class:`Frame` objects: an iterable and a context manager.

    Properties: ``name``, ``fps`` (``None`` when unknown), ``size`` (``(height, width)`` or ``None``),
    ``num_frames`` (``None`` when unknown, e.g. streams and cameras; already capped by
    ``max_frames``), ``skipped`` (``[(index, reason)]`` of frames that could not be read during the
    last iteration). ``max_frames``: only frames with ``index < max_frames`` are produced.
    """

    def __init__(self, name: str, max_frames: int | None = None) -> None:
        if max_frames is not None:
            if isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) or max_frames < 0:
                raise InputError(f"max_frames: expected a non-negative integer or None, got {max_frames!r}")
            max_frames = int(max_frames)
        self._name = name
        self.max_frames: int | None = max_frames
        self._skipped: list[tuple[int, str]] = []
        self._closed = False

    # -- properties --------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def fps(self) -> float | None:
        return None

    @property
    def size(self) -> tuple[int, int] | None:
        return None

    @property
    def num_frames(self) -> int | None:
        total = self._total_frames()
        if total is None:
            return None
        return total if self.max_frames is None else min(total, self.max_frames)

    def _total_frames(self) -> int | None:
        return None

    @property
    def skipped(self) -> list[tuple[int, str]]:
        return self._skipped

    # -- iteration ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Frame]:
        if self._closed:
            raise ValueError(f"{self.name}: source is closed")
        self._skipped = []
        if self.max_frames == 0:
            return
        for frame in self._frames():
            if self.max_frames is not None and frame.index >= self.max_frames:
                break
            yield frame
            if self.max_frames is not None and frame.index + 1 >= self.max_frames:
                break

    @abstractmethod
    def _frames(self) -> Iterator[Frame]:
        """Yield frames in order; call :meth:`_skip` for frames that cannot be read."""

    def _skip(self, index: int, reason: str) -> None:
        self._skipped.append((index, reason))
        warnings.warn(f"{self.name}: skipping frame {index}: {reason}", RuntimeWarning, stacklevel=4)

    # -- resources ---------------------------------------------------------------------------

    def close(self) -> None:
        """Release the file / device. Idempotent."""
        self._closed = True

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, fps={self.fps}, size={self.size}, num_frames={self.num_frames})"


# ---------------------------------------------------------------------------------------------
# image folders and MOTChallenge sequences
# ---------------------------------------------------------------------------------------------


class _IndexedImageSource(FrameSource):
    """Frames from a mapping ``index -> image path`` over ``range(total)``; missing indices are skipped."""

    def __init__(self, name: str, max_frames: int | None) -> None:
        super().__init__(name, max_frames)
        self._files: dict[int, Path] = {}
        self._total = 0
        self._size: tuple[int, int] | None = None
        self._size_probed = False

    def _total_frames(self) -> int | None:
        return self._total

    @property
    def size(self) -> tuple[int, int] | None:
        """``(height, width)`` of the first readable image (decoded once, on first access)."""
        if self._size is None and not self._size_probed:
            self._size_probed = True
            for index in sorted(self._files)[:5]:
                try:
                    image = read_image(self._files[index])
                except InputError:
                    continue
                self._size = (int(image.shape[0]), int(image.shape[1]))
                break
        return self._size

    def _frames(self) -> Iterator[Frame]:
        for index in range(self.num_frames or 0):
            if self._closed:
                return
            path = self._files.get(index)
            if path is None:
                self._skip(index, "image file missing")
                continue
            try:
                image = read_image(path)
            except InputError as exc:
                self._skip(index, str(exc))
                continue
            if self._size is None:
                self._size = (int(image.shape[0]), int(image.shape[1]))
            yield Frame(index=index, image=image, name=path.name)


class ImageFolderSource(_IndexedImageSource):
    """The images of one folder (not recursive), in natural order (``frame2`` before ``frame10``).

    Reads ``.jpg .jpeg .png .bmp .tif .tiff .webp`` files (any case; hidden files ignored).
    ``index`` is the position in the sorted list, also when an image in between is unreadable.
    ``fps``: optional frame rate to report (image folders have none). An empty folder is an
    :class:`~masa.io.errors.InputError`.
    """

    def __init__(self, path: str | Path, *, fps: float | None = None, max_frames: int | None = None) -> None:
        path = Path(path)
        super().__init__(path.name or str(path), max_frames)
        if not path.exists():
            raise InputNotFoundError(f"{path}: image folder not found")
        if not path.is_dir():
            raise InputError(f"{path}: expected a folder of images, found a file")
        self.path = path
        files = _list_images(path)
        if not files:
            raise InputError(f"{path}: no images found (expected files ending in {', '.join(IMAGE_EXTENSIONS)})")
        self.files: list[Path] = files
        self._files = dict(enumerate(files))
        self._total = len(files)
        self._fps = None if fps is None else float(fps)

    @property
    def fps(self) -> float | None:
        return self._fps


class MotSequenceSource(_IndexedImageSource):
    """A MOTChallenge sequence folder: ``seqinfo.ini``, ``img1/000001.jpg`` ..., ``det/det.txt``, ``gt/gt.txt``.

    ``seqinfo.ini`` gives the name, image folder (``imDir``), frame rate, length, size and image
    extension. Image ``NNNNNN<ext>`` is frame index ``NNNNNN - 1``. Without ``seqinfo.ini`` the
    sequence is the numbered images of ``img1/`` (name = folder name, no fps). Indices up to
    ``seqLength`` whose image is missing or unreadable are skipped (recorded in ``skipped``).
    ``det_path`` / ``gt_path``: ``det/det.txt`` / ``gt/gt.txt`` when they exist, else ``None``.
    """

    def __init__(self, path: str | Path, *, max_frames: int | None = None) -> None:
        path = Path(path)
        if not path.exists():
            raise InputNotFoundError(f"{path}: MOTChallenge sequence folder not found")
        if not path.is_dir():
            raise InputError(f"{path}: expected a MOTChallenge sequence folder, found a file")
        from masa.io.mot import read_seqinfo

        seqinfo = read_seqinfo(path) if (path / "seqinfo.ini").is_file() else None
        super().__init__(seqinfo.name if seqinfo else path.resolve().name, max_frames)
        self.path = path
        # The seqinfo.ini keys under their MOTChallenge names (empty without seqinfo.ini).
        info: dict[str, Any] = seqinfo.to_dict() if seqinfo else {}
        self.info = info
        image_dir = path / (seqinfo.im_dir if seqinfo else "img1")
        if not image_dir.is_dir():
            raise InputError(f"{path}: image folder {image_dir.name}/ not found (expected MOTChallenge layout)")
        self.image_dir = image_dir
        ext = seqinfo.im_ext.lower() if seqinfo else ""
        files: dict[int, Path] = {}
        for file in image_dir.iterdir():
            suffix = file.suffix.lower()
            if not file.stem.isdigit() or suffix not in IMAGE_EXTENSIONS or int(file.stem) < 1:
                continue
            index = int(file.stem) - 1
            # Prefer the extension named by seqinfo.ini when several files share a number.
            if index not in files or (suffix == ext and files[index].suffix.lower() != ext):
                files[index] = file
        if not files:
            raise InputError(f"{image_dir}: no numbered images found (expected 000001{ext or '.jpg'}, ...)")
        self._files = files
        self._total = int(info["seqLength"]) if "seqLength" in info else max(files) + 1
        if "imHeight" in info and "imWidth" in info:
            self._size = (int(info["imHeight"]), int(info["imWidth"]))
        det = path / "det" / "det.txt"
        gt = path / "gt" / "gt.txt"
        self.det_path: Path | None = det if det.is_file() else None
        self.gt_path: Path | None = gt if gt.is_file() else None

    @property
    def fps(self) -> float | None:
        rate = self.info.get("frameRate")
        return None if rate is None else float(rate)


# ---------------------------------------------------------------------------------------------
# videos and streams (PyAV)
# ---------------------------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    """A short reason for an exception: the OS / FFmpeg error text without errno and call name."""
    if isinstance(exc, OSError) and exc.strerror:
        return str(exc.strerror)
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _PyAVSource(FrameSource):
    """Frame-by-frame decoding of the first video stream of a container opened with PyAV."""

    _what = "video"

    def __init__(self, target: str, name: str, max_frames: int | None, open_options: dict[str, Any]) -> None:
        super().__init__(name, max_frames)
        self._target = target
        self._open_options = open_options
        self._container: Any = None
        self._stream: Any = None
        self._started = False
        self._open()

    def _open(self) -> None:
        import av

        try:
            container = av.open(self._target, mode="r", **self._open_options)
        except FileNotFoundError:
            raise InputNotFoundError(f"{self._target}: {self._what} not found") from None
        except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"{self._target}: cannot open {self._what}: {_first_line(exc)}") from None
        if not container.streams.video:
            container.close()
            raise InputError(f"{self._target}: no video stream found (is it an audio or data file?)")
        stream = container.streams.video[0]
        if stream.codec_context is None or not stream.codec_context.width:
            container.close()
            raise InputError(f"{self._target}: the video stream has no decodable frames (unknown codec or size)")
        self._container = container
        self._stream = stream

    @property
    def fps(self) -> float | None:
        stream = self._stream
        if stream is None:
            return None
        for rate in (stream.average_rate, getattr(stream, "guessed_rate", None), stream.base_rate):
            if rate is not None and float(rate) > 0:
                return float(rate)
        return None

    @property
    def size(self) -> tuple[int, int] | None:
        if self._stream is None:
            return None
        ctx = self._stream.codec_context
        return (int(ctx.height), int(ctx.width)) if ctx.width and ctx.height else None

    def _bad_packet(self, index: int, errors: int, what: str, exc: Exception) -> bool:
        """Skip frame ``index`` (a packet that failed to ``what``); True after too many errors in a row."""
        self._skip(index, f"cannot {what} packet: {_first_line(exc)}")
        if errors >= _MAX_CONSECUTIVE_ERRORS:
            warnings.warn(f"{self.name}: giving up after {errors} consecutive {what} errors", RuntimeWarning, stacklevel=2)
            return True
        return False

    def _frames(self) -> Iterator[Frame]:
        import av

        if self._started:  # a second iteration starts again from the beginning
            self._container.close()
            self._open()
        self._started = True
        container, stream = self._container, self._stream
        index = 0
        errors = 0
        packets = container.demux(stream)
        while not self._closed:
            if self.max_frames is not None and index >= self.max_frames:
                return
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.EOFError:
                return
            except (av.error.FFmpegError, OSError) as exc:
                # The demuxer lost the stream (corrupt data or a dropped connection): try to resync.
                errors += 1
                give_up = self._bad_packet(index, errors, "read", exc)
                index += 1
                if give_up:
                    return
                packets = container.demux(stream)
                continue
            try:
                decoded = packet.decode()
            except av.error.EOFError:
                return
            except (av.error.FFmpegError, ValueError) as exc:
                errors += 1
                # One video packet holds one frame: count it so later indices stay aligned.
                give_up = self._bad_packet(index, errors, "decode", exc)
                index += 1
                if give_up:
                    return
                continue
            for frame in decoded:
                errors = 0
                image = np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
                yield Frame(index=index, image=image, name=f"frame {index}")
                index += 1

    def close(self) -> None:
        super().close()
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # pragma: no cover - closing a broken container must not raise
                pass
            self._container = None


class VideoFileSource(_PyAVSource):
    """A video file decoded frame by frame with PyAV (FFmpeg): any container / codec FFmpeg reads.

    ``fps``: the stream's average frame rate. ``num_frames``: the frame count stored in the
    container, or ``None`` when the container does not store it. A missing file raises
    :class:`~masa.io.errors.InputNotFoundError`; a file that is not a video (or has a corrupt header)
    :class:`~masa.io.errors.InputError`. A packet that cannot be decoded mid-stream is skipped with a
    warning and recorded in ``skipped`` (its index is counted, so later frames keep their index).
    """

    _what = "video file"

    def __init__(self, path: str | Path, *, max_frames: int | None = None) -> None:
        path = Path(path)
        if not path.exists():
            raise InputNotFoundError(f"{path}: video file not found")
        if path.is_dir():
            raise InputError(f"{path}: expected a video file, found a folder")
        if path.stat().st_size == 0:
            raise InputError(f"{path}: not a video file (the file is empty)")
        self.path = path
        super().__init__(str(path), path.name, max_frames, {})

    def _total_frames(self) -> int | None:
        frames = int(self._stream.frames) if self._stream is not None else 0
        return frames if frames > 0 else None


class StreamSource(_PyAVSource):
    """A network stream or URL opened with PyAV: ``rtsp://``, ``rtmp://``, ``http(s)://``, ``udp://``,
    ``file:`` ... (anything FFmpeg's protocols accept). ``num_frames`` is ``None``.

    ``timeout``: seconds to wait when opening and between reads. RTSP uses TCP transport by default
    (fewer dropped packets than UDP). An unreachable URL raises :class:`~masa.io.errors.InputError`.
    """

    _what = "stream"

    def __init__(self, url: str, *, timeout: float = 10.0, max_frames: int | None = None) -> None:
        url = str(url)
        options: dict[str, Any] = {"timeout": timeout}
        if url.lower().startswith("rtsp"):
            options["options"] = {"rtsp_transport": "tcp"}
        super().__init__(url, url, max_frames, options)


def _quiet_opencv(fn: Any) -> Any:
    """Run ``fn()`` with OpenCV's log output silenced (failed opens print several backend warnings)."""
    import cv2

    log = getattr(getattr(cv2, "utils", None), "logging", None)
    if log is None:
        return fn()
    level = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_SILENT)
    try:
        return fn()
    finally:
        log.setLogLevel(level)


class CameraSource(FrameSource):
    """A local camera (webcam) by device index, read with OpenCV's ``cv2.VideoCapture``.

    ``fps`` is what the driver reports (``None`` when it reports 0); ``num_frames`` is ``None``.
    Iteration ends when the camera stops delivering frames. A camera that cannot be opened raises
    :class:`~masa.io.errors.InputError`.
    """

    def __init__(self, index: int, *, max_frames: int | None = None) -> None:
        import cv2

        super().__init__(f"camera {index}", max_frames)
        self.device = int(index)
        capture = _quiet_opencv(lambda: cv2.VideoCapture(self.device))
        if not capture.isOpened():
            capture.release()
            raise InputError(f"camera {index}: cannot open the camera (no such device, or it is busy)")
        self._capture = capture

    @property
    def fps(self) -> float | None:
        import cv2

        if self._capture is None:
            return None
        fps = float(self._capture.get(cv2.CAP_PROP_FPS))
        return fps if np.isfinite(fps) and fps > 0 else None

    @property
    def size(self) -> tuple[int, int] | None:
        import cv2

        if self._capture is None:
            return None
        w = int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        h = int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        return (h, w) if w > 0 and h > 0 else None

    def _frames(self) -> Iterator[Frame]:
        index = 0
        while not self._closed and self._capture is not None:
            ok, image = self._capture.read()
            if not ok or image is None:
                return
            yield Frame(index=index, image=to_rgb8(image, bgr=True), name=f"frame {index}")
            index += 1

    def close(self) -> None:
        super().close()
        if getattr(self, "_capture", None) is not None:
            self._capture.release()
            self._capture = None


# ---------------------------------------------------------------------------------------------
# dispatch
# ---------------------------------------------------------------------------------------------

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]+://")
_SCHEMES = ("file:", "rtsp:", "rtsps:", "rtmp:", "rtmps:", "http:", "https:", "udp:", "tcp:", "srt:", "rtp:")


def is_url(spec: str) -> bool:
    """``True`` for URL-looking strings: ``scheme://...`` or a known FFmpeg protocol prefix (``file:x.mp4``)."""
    return bool(_URL.match(spec)) or spec.lower().startswith(_SCHEMES)


def open_source(spec: str | int | Path, max_frames: int | None = None) -> FrameSource:
    """Open a frame source from a user specification.

    * ``int`` or a digit string (``"0"``) -> :class:`CameraSource`
    * URL (``rtsp://``, ``http://``, ``file:`` ...) -> :class:`StreamSource`
    * folder with ``seqinfo.ini`` or ``img1/`` -> :class:`MotSequenceSource`
    * other folder -> :class:`ImageFolderSource`
    * file -> :class:`VideoFileSource`

    ``max_frames``: only frames with ``index < max_frames`` are read. Anything else raises
    :class:`~masa.io.errors.InputError` (a missing path: :class:`~masa.io.errors.InputNotFoundError`)
    listing what is accepted.
    """
    if isinstance(spec, bool):
        raise InputError(f"input {spec!r}: expected {_ACCEPTED}")
    if isinstance(spec, (int, np.integer)):
        return CameraSource(int(spec), max_frames=max_frames)
    if not isinstance(spec, (str, Path)):
        raise InputError(f"input {spec!r} ({type(spec).__name__}): expected {_ACCEPTED}")
    text = str(spec).strip() if isinstance(spec, str) else str(spec)
    if not text:
        raise InputError(f"empty input: expected {_ACCEPTED}")
    if isinstance(spec, str):
        if text.isdigit() and not Path(text).exists():
            return CameraSource(int(text), max_frames=max_frames)
        if is_url(text):
            return StreamSource(text, max_frames=max_frames)
    path = Path(text).expanduser()
    if path.is_dir():
        if (path / "seqinfo.ini").is_file() or (path / "img1").is_dir():
            return MotSequenceSource(path, max_frames=max_frames)
        return ImageFolderSource(path, max_frames=max_frames)
    if path.is_file():
        return VideoFileSource(path, max_frames=max_frames)
    if path.exists():
        raise InputError(f"{path}: not a regular file or folder; expected {_ACCEPTED}")
    raise InputNotFoundError(f"{path}: no such file or folder; expected {_ACCEPTED}")
