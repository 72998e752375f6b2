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
  in the input (a consumer should use ``frame.index``, never count frames itself). Video frame
  indices come from the timestamps, not from counting packets (exact with B-frames, variable frame
  rate and decode errors; see :class:`_Timeline`). Delivered frames whose image may be wrong (the
  decoder concealed errors, or they are predicted from a lost frame) are recorded in
  ``source.corrupt``; an input that ends before its declared length sets ``source.ended_early``.
  Damage the decoder does not notice (H.264 has no checksum) cannot be reported.
* An iteration that produces no frame at all raises :class:`~masa.io.errors.InputError` saying why.
* Bad inputs raise :class:`~masa.io.errors.InputError` (missing paths:
  :class:`~masa.io.errors.InputNotFoundError`, also a :class:`FileNotFoundError`) naming the input.
"""

from __future__ import annotations

import re
import warnings
from abc import ABC, abstractmethod
from bisect import bisect_left, bisect_right, insort
from collections import deque
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
    ``max_frames``). ``max_frames``: only frames with ``index < max_frames`` are produced.

    What the last iteration met (reset when an iteration starts), for a run summary:

    * ``skipped``: ``[(index, reason)]`` of frames that could not be read (not delivered);
    * ``corrupt``: ``[(index, reason)]`` of frames that were delivered but whose image may be wrong
      (the decoder concealed errors in it, or it is predicted from a frame that was lost or damaged);
    * ``delivered``: the number of frames produced;
    * ``expected``: the declared length (``num_frames``), ``None`` when unknown;
    * ``ended_early``: the warning text when the input ended before its declared length, else ``None``.

    Each skipped / corrupt frame and an early end are also reported with :func:`warnings.warn`
    (``RuntimeWarning``) naming the source and the frame index. An iteration that ends without
    producing a single frame raises :class:`~masa.io.errors.InputError` saying why (``max_frames=0``
    and a consumer that stops early are not errors).
    """

    def __init__(self, name: str, max_frames: int | None = None) -> None:
        if max_frames is not None:
            if isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) or max_frames < 0:
                raise InputError(f"max_frames: expected a non-negative integer or None, got {max_frames!r}")
            max_frames = int(max_frames)
        self._name = name
        self.max_frames: int | None = max_frames
        self._skipped: list[tuple[int, str]] = []
        self._corrupt: list[tuple[int, str]] = []
        self.delivered = 0
        self.ended_early: str | None = None
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
    def expected(self) -> int | None:
        """The declared number of frames (``num_frames``), ``None`` when the input does not declare one."""
        return self.num_frames

    @property
    def skipped(self) -> list[tuple[int, str]]:
        return self._skipped

    @property
    def corrupt(self) -> list[tuple[int, str]]:
        return self._corrupt

    # -- iteration ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Frame]:
        if self._closed:
            raise ValueError(f"{self.name}: source is closed")
        self._skipped = []
        self._corrupt = []
        self.delivered = 0
        self.ended_early = None
        if self.max_frames == 0:
            return
        for frame in self._frames():
            if self.max_frames is not None and frame.index >= self.max_frames:
                break
            self.delivered += 1
            yield frame
            if self.max_frames is not None and frame.index + 1 >= self.max_frames:
                break
        if self.delivered == 0 and not self._closed:
            raise InputError(f"{self.name}: no frame could be read: {self._no_frame_reason()}")

    @abstractmethod
    def _frames(self) -> Iterator[Frame]:
        """Yield frames in order; call :meth:`_skip` for frames that cannot be read."""

    def _no_frame_reason(self) -> str:
        """Why the last iteration produced no frame (for the :class:`InputError`)."""
        if self._skipped:
            first = self._skipped[0][1]
            return f"all {len(self._skipped)} frames are unreadable (first: frame {self._skipped[0][0]}: {first})"
        return "the input contains no frames"

    def _in_range(self, index: int) -> bool:
        return self.max_frames is None or index < self.max_frames

    def _skip(self, index: int, reason: str) -> None:
        if not self._in_range(index):
            return
        self._skipped.append((index, reason))
        warnings.warn(f"{self.name}: skipping frame {index}: {reason}", RuntimeWarning, stacklevel=4)

    def _mark_corrupt(self, index: int, reason: str, *, warn: bool = True) -> None:
        """Record that delivered frame ``index`` may show a wrong image (``warn``: also warn)."""
        if not self._in_range(index):
            return
        self._corrupt.append((index, reason))
        if warn:
            warnings.warn(f"{self.name}: frame {index} may be damaged: {reason}", RuntimeWarning, stacklevel=4)

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

    def index_paths(self) -> dict[int, Path]:
        """``{0-based frame index: image path}`` of every frame file found (random access, e.g. for training)."""
        return dict(self._files)

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
    strerror = getattr(exc, "strerror", None)  # OSError and PyAV's FFmpegError
    if isinstance(strerror, str) and strerror:
        return strerror
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# Give up on a video after this many decode errors in a row, or this many read errors without a
# packet in between (the demuxer cannot resync, e.g. an MP4 whose index is at the end of a stream).
_MAX_CONSECUTIVE_ERRORS = 50
_MAX_READ_ERRORS = 10

_PENDING, _DECODED, _LOST = 0, 1, 2


class _Packet:
    """Book-keeping for one demuxed video packet (= one frame) during an iteration."""

    __slots__ = ("seq", "pts", "key", "ref", "error", "state", "index", "image", "concealed")

    def __init__(self, seq: int, pts: int | None, key: bool, ref: bool, error: str | None = None) -> None:
        self.seq = seq  # position in decode order
        self.pts = pts
        self.key = key  # a keyframe: decodes without earlier packets
        self.ref = ref  # may be referenced by later packets (not known to be disposable)
        self.error = error  # why it could not be decoded
        self.state = _PENDING
        self.index = -1
        self.image: np.ndarray | None = None
        self.concealed = False


def _h264_disposable(data: bytes, length_size: int) -> bool:
    """True when every slice of an AVCC (MP4-style) H.264 packet has ``nal_ref_idc == 0``.

    Such a frame is referenced by no other frame, so losing it damages nothing else. Anything that
    does not parse cleanly (e.g. the packet is corrupt) counts as a reference frame.
    """
    pos, slices = 0, 0
    while pos < len(data):
        if pos + length_size > len(data):
            return False
        size = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        if size <= 0 or pos + size > len(data) or data[pos] & 0x80:
            return False
        if data[pos] & 0x1F in (1, 5):  # coded slice (non-IDR / IDR)
            if data[pos] & 0x60:
                return False
            slices += 1
        pos += size
    return slices > 0


class _Timeline:
    """Gives each decoded frame its index in the input and finds the frames that were lost.

    The rule (exact with B-frames, variable frame rate and decode errors): every packet the demuxer
    delivers is one frame, and a frame's index is the number of packets with a smaller presentation
    timestamp (``pts``), i.e. its position in display order among all the packets of the stream.
    The container's timestamps survive damaged packet data, so a packet that cannot be decoded,
    or that the decoder silently drops, still takes its place: it is reported as skipped at its own
    index and later frames are not shifted. Packets the demuxer could not read at all (a read error)
    are estimated from the gap in decode timestamps (``dts``) at the frame duration. Streams without
    timestamps (some raw / AVI streams) fall back to counting: decoded frames and undecodable packets
    each take the next index.

    Decoded frames are held until every packet before them in decode order is resolved, so that a
    frame predicted from a packet that was lost or concealed (``frame.is_corrupt``) earlier in the
    same group of pictures (since the last keyframe) is reported in ``source.corrupt``.
    """

    _MAX_HELD = 64  # release frames anyway when a broken stream keeps them waiting

    def __init__(self, source: FrameSource, stream: Any) -> None:
        self.source = source
        self.counting: bool | None = None  # decided by the first packet: no pts -> counting
        self.seq = 0
        self.packets = 0  # packets demuxed (excluding flush / discarded ones)
        self.counted = 0  # indices assigned so far
        self.pending: list[int] = []  # sorted pts of packets without an index yet
        self.by_pts: dict[int, _Packet] = {}
        self.unresolved: deque[_Packet] = deque()  # in decode order
        self.held: deque[_Packet] = deque()  # decoded, in index order, not yet released
        self.keys: list[int] = []  # seq of keyframe packets
        self.bad: list[tuple[int, int, str]] = []  # (seq, index, what happened) of damaged reference frames
        self.warned: set[int] = set()  # seq of bad frames whose consequences were warned about
        self.discard: set[int] = set()
        self.last_dts: int | None = None
        self.last_duration = 0
        self.min_offset: int | None = None  # smallest pts - dts seen
        self.read_error: str | None = None
        self.last_out_pts: int | None = None
        ctx = stream.codec_context
        extradata = bytes(ctx.extradata or b"") if ctx is not None else b""
        avcc = ctx is not None and ctx.name == "h264" and len(extradata) > 4 and extradata[0] == 1
        self.length_size = (extradata[4] & 3) + 1 if avcc else 0  # NAL length field of MP4-style H.264
        rate = stream.average_rate or getattr(stream, "guessed_rate", None) or stream.base_rate
        tb = stream.time_base
        self.nominal = int(round(1 / (rate * tb))) if rate and tb and float(rate) > 0 else 0

    # -- packets -------------------------------------------------------------------------------

    def add(self, packet: Any) -> _Packet | None:
        """Register a demuxed packet (``None`` for packets that are no frame of their own)."""
        if packet.is_discard:  # decoded for reference only (edit list pre-roll), never shown
            if packet.pts is not None:
                self.discard.add(packet.pts)
            return None
        if self.counting is None:
            self.counting = packet.pts is None
        pts = None if self.counting else packet.pts
        if self.read_error is not None:
            self._fill_read_gap(packet, self.read_error)
            self.read_error = None
        ref = not packet.is_disposable
        if ref and self.length_size:
            ref = not _h264_disposable(bytes(packet), self.length_size)
        record = self._new(pts, bool(packet.is_keyframe), ref)
        if packet.dts is not None:
            self.last_dts = packet.dts
            self.last_duration = int(packet.duration or 0)
            if packet.pts is not None:
                offset = packet.pts - packet.dts
                self.min_offset = offset if self.min_offset is None else min(self.min_offset, offset)
        return record

    def _new(self, pts: int | None, key: bool, ref: bool, error: str | None = None) -> _Packet:
        record = _Packet(self.seq, pts, key, ref, error)
        self.seq += 1
        self.packets += 1
        if key:
            self.keys.append(record.seq)
        self.unresolved.append(record)
        if pts is not None:
            if pts in self.by_pts:  # duplicate timestamp (broken stream): keep the older one rankable
                record.pts = None
            else:
                insort(self.pending, pts)
                self.by_pts[pts] = record
        return record

    def _fill_read_gap(self, packet: Any, reason: str) -> None:
        """Packets lost in a read error: as many as fit in the ``dts`` gap at the frame duration."""
        duration = self.last_duration or self.nominal
        if self.counting or packet.dts is None or self.last_dts is None or duration <= 0:
            return
        lost = int(round((packet.dts - self.last_dts) / duration)) - 1
        for k in range(1, min(max(lost, 0), 10_000) + 1):
            pts = self.last_dts + k * duration + (self.min_offset or 0)
            if pts not in self.by_pts:
                self._new(pts, False, True, f"lost in a read error: {reason}")

    def failed(self, record: _Packet | None, reason: str) -> None:
        """The packet of ``record`` could not be decoded."""
        if record is None:
            return
        record.error = f"cannot decode packet: {reason}"
        if record.pts is None:  # counting: it takes the next index now
            self._lose(record, self._next())

    # -- frames --------------------------------------------------------------------------------

    def _next(self) -> int:
        index = self.counted
        self.counted += 1
        return index

    def _lose(self, record: _Packet, index: int) -> None:
        record.state, record.index = _LOST, index
        self.source._skip(index, record.error or "the decoder returned no image for it (corrupt or missing data)")
        if record.ref:
            self.bad.append((record.seq, index, "was lost"))

    def output(self, frame: Any) -> None:
        """A frame came out of the decoder (in display order)."""
        pts = frame.pts
        record: _Packet | None = None
        if pts is not None and pts in self.discard:
            return
        if pts is not None and not self.counting:
            self.last_out_pts = pts if self.last_out_pts is None else max(pts, self.last_out_pts)
            k = bisect_left(self.pending, pts)
            for earlier in self.pending[:k]:  # shown before this frame but never decoded: lost
                self._lose(self.by_pts.pop(earlier), self._next())
            if k < len(self.pending) and self.pending[k] == pts:
                record = self.by_pts.pop(pts)
                k += 1
            del self.pending[:k]
        if record is None:  # no timestamp to match: the oldest packet without a frame
            record = next((r for r in self.unresolved if r.state == _PENDING and r.pts is None), None)
            if record is None:
                record = _Packet(self.seq, None, False, True)
        record.state, record.index = _DECODED, self._next()
        record.image = np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
        record.concealed = bool(frame.is_corrupt)
        if record.concealed and record.ref:
            self.bad.append((record.seq, record.index, "is damaged"))
        self.held.append(record)

    def truncated(self, declared: int | None) -> None:
        """The input ended after fewer packets than ``declared``: find the frames it cut out.

        The packets that were not read come after the last one read in decode order, so their
        timestamps are later than its ``dts``; frames shown after that point are checked against
        the frame duration, and a gap holds a missing frame (so later frames keep their index).
        """
        duration = self.last_duration or self.nominal
        if self.counting or declared is None or self.packets >= declared or self.last_dts is None or duration <= 0:
            return
        known = [p for p in self.pending if p <= self.last_dts]
        anchor = max(known + ([self.last_out_pts] if self.last_out_pts is not None else []), default=None)
        if anchor is None:
            return
        for pts in [p for p in self.pending if p > self.last_dts]:
            missing = min(int(round((pts - anchor) / duration)) - 1, declared - self.packets)
            for k in range(1, max(missing, 0) + 1):
                gap = anchor + k * duration
                if gap not in self.by_pts:
                    self._new(gap, False, False, "missing: the input ends before this frame's data (truncated)")
            anchor = pts

    def finish(self) -> None:
        """End of the stream: packets that never produced a frame are lost."""
        for pts in self.pending:
            self._lose(self.by_pts.pop(pts), self._next())
        self.pending.clear()
        for record in self.unresolved:
            if record.state == _PENDING:
                self._lose(record, self._next())

    def release(self, final: bool = False) -> Iterator[Frame]:
        """Frames whose predecessors in decode order are all resolved, in index order."""
        while self.unresolved and self.unresolved[0].state != _PENDING:
            self.unresolved.popleft()
        while self.held:
            record = self.held[0]
            if not (final or len(self.held) > self._MAX_HELD or not self.unresolved or self.unresolved[0].seq > record.seq):
                break
            self.held.popleft()
            self._check_damage(record)
            index, image = record.index, record.image
            record.image = None
            yield Frame(index=index, image=image, name=f"frame {index}")  # type: ignore[arg-type]
        self._prune()

    def _check_damage(self, record: _Packet) -> None:
        if record.concealed:
            self.source._mark_corrupt(record.index, "the decoder concealed errors in its data (frame.is_corrupt)")
            return
        if record.key:
            return
        i = bisect_right(self.keys, record.seq) - 1
        gop_start = self.keys[i] if i >= 0 else -1
        causes = [b for b in self.bad if gop_start <= b[0] < record.seq]
        if not causes:
            return
        seq, index, what = min(causes)
        reason = f"it is predicted from frame {index}, which {what}"
        warn = seq not in self.warned
        self.warned.add(seq)
        if warn:
            reason_warned = f"{reason} (so may later frames up to the next keyframe; see source.corrupt)"
            self.source._mark_corrupt(record.index, reason_warned)
            self.source._corrupt[-1] = (record.index, reason)
        else:
            self.source._mark_corrupt(record.index, reason, warn=False)

    def _prune(self) -> None:
        lowest = min([q[0].seq for q in (self.held, self.unresolved) if q] + [self.seq])
        i = bisect_right(self.keys, lowest) - 1
        if i > 0:
            del self.keys[:i]
        if self.keys:
            self.bad = [b for b in self.bad if b[0] >= self.keys[0]]
        if len(self.discard) > 1000:
            self.discard.clear()


class _PyAVSource(FrameSource):
    """Frame-by-frame decoding of the first video stream of a container opened with PyAV.

    Frame indices follow the stream's timestamps (see :class:`_Timeline`): a packet that cannot be
    decoded keeps its index and is reported in ``skipped``; concealed frames and frames predicted
    from lost ones are reported in ``corrupt``; a stream that ends before the length its container
    declares warns ``"<name>: the stream ended after N of M frames (declared length)"`` (``N`` counts
    the delivered and the skipped frames) and sets ``ended_early``.
    """

    _what = "video"

    def __init__(self, target: str, name: str, max_frames: int | None, open_options: dict[str, Any]) -> None:
        super().__init__(name, max_frames)
        self._target = target
        self._open_options = open_options
        self._container: Any = None
        self._stream: Any = None
        self._info: tuple[float | None, tuple[int, int] | None, int | None] = (None, None, None)
        self._started = False
        self._packets = 0
        self._read_error: str | None = None
        self._decode_error: str | None = None
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
        # Read once: the stream must not be touched after the container is closed (PyAV crashes).
        fps = None
        for rate in (stream.average_rate, getattr(stream, "guessed_rate", None), stream.base_rate):
            if rate is not None and float(rate) > 0:
                fps = float(rate)
                break
        ctx = stream.codec_context
        size = (int(ctx.height), int(ctx.width)) if ctx.width and ctx.height else None
        declared = int(stream.frames or 0) or len(getattr(stream, "index_entries", None) or ())
        self._info = (fps, size, declared if declared > 0 else None)

    @property
    def fps(self) -> float | None:
        return self._info[0]

    @property
    def size(self) -> tuple[int, int] | None:
        return self._info[1]

    def _frames(self) -> Iterator[Frame]:
        import av

        if self._started:  # a second iteration starts again from the beginning
            self._container.close()
            self._open()
        self._started = True
        self._read_error = self._decode_error = None
        container, stream = self._container, self._stream
        timeline = _Timeline(self, stream)
        read_errors = decode_errors = 0
        gave_up = False
        packets = container.demux(stream)
        while not self._closed:
            if self.max_frames is not None and timeline.counted >= self.max_frames and not timeline.held:
                return
            try:
                packet = next(packets)
            except (StopIteration, av.error.EOFError):
                break
            except (av.error.FFmpegError, OSError) as exc:
                # The demuxer lost the stream (corrupt data or a dropped connection): try to resync.
                read_errors += 1
                self._read_error = timeline.read_error = _first_line(exc)
                if read_errors >= _MAX_READ_ERRORS:
                    gave_up = True
                    self._give_up(f"{read_errors} read errors in a row ({self._read_error})", timeline)
                    break
                packets = container.demux(stream)
                continue
            if packet.size == 0:  # the demuxer's final flush packet
                continue
            if read_errors:
                warnings.warn(
                    f"{self.name}: recovered after {read_errors} read error(s) after frame {timeline.counted - 1}: "
                    f"{self._read_error}",
                    RuntimeWarning,
                    stacklevel=3,
                )
            read_errors = 0
            record = timeline.add(packet)
            self._packets = timeline.packets
            try:
                decoded = packet.decode()
            except av.error.EOFError:
                break
            except (av.error.FFmpegError, ValueError) as exc:
                decode_errors += 1
                self._decode_error = _first_line(exc)
                timeline.failed(record, self._decode_error)
                if decode_errors >= _MAX_CONSECUTIVE_ERRORS:
                    gave_up = True
                    self._give_up(f"{decode_errors} decode errors in a row ({self._decode_error})", timeline)
                    break
                yield from timeline.release()
                continue
            decode_errors = 0
            for frame in decoded:
                timeline.output(frame)
            yield from timeline.release()
        if self._closed:
            return
        if not gave_up:
            timeline.truncated(self._info[2])
            try:
                for frame in stream.codec_context.decode(None):  # flush the frames the decoder still holds
                    timeline.output(frame)
            except (av.error.FFmpegError, ValueError) as exc:
                self._decode_error = _first_line(exc)
        timeline.finish()
        yield from timeline.release(final=True)
        expected = self.num_frames
        if expected is not None and timeline.counted < expected and self.delivered:
            message = f"{self.name}: the stream ended after {timeline.counted} of {expected} frames (declared length)"
            if self._skipped:
                message += f"; {self.delivered} delivered, {len(self._skipped)} skipped"
            self.ended_early = message
            warnings.warn(message, RuntimeWarning, stacklevel=3)

    def _give_up(self, what: str, timeline: _Timeline) -> None:
        if self.delivered or timeline.held:
            after = f" after frame {timeline.counted - 1}" if timeline.counted else ""
            warnings.warn(f"{self.name}: giving up{after}: {what}", RuntimeWarning, stacklevel=4)

    def _no_frame_reason(self) -> str:
        if self._packets == 0 and self._read_error is not None:
            fmt = getattr(getattr(self._container, "format", None), "name", "") or ""
            if "mp4" in fmt and is_url(self._target) and not self._target.lower().startswith("file:"):
                return (
                    f"reading the stream fails ({self._read_error}): this MP4 probably has its index (the 'moov' "
                    "atom) at the end of the file, which a server without range requests cannot deliver first; "
                    "re-mux it with the index at the front (ffmpeg -i in.mp4 -c copy -movflags +faststart out.mp4) "
                    "or serve it with range requests"
                )
            return f"reading the {self._what} fails: {self._read_error}"
        if self._packets == 0:
            return f"the {self._what} contains no frames"
        if self._decode_error is not None:
            return f"none of its {self._packets} packets could be decoded (last error: {self._decode_error})"
        return f"the decoder returned no image for any of its {self._packets} packets"

    def close(self) -> None:
        super().close()
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # pragma: no cover - closing a broken container must not raise
                pass
            self._container = None
            self._stream = None


class VideoFileSource(_PyAVSource):
    """A video file decoded frame by frame with PyAV (FFmpeg): any container / codec FFmpeg reads.

    ``fps``: the stream's average frame rate. ``num_frames``: the frame count stored in the
    container, or ``None`` when the container does not store it. A missing file raises
    :class:`~masa.io.errors.InputNotFoundError`; a file that is not a video (or has a corrupt header)
    :class:`~masa.io.errors.InputError`. A packet that cannot be decoded mid-stream is skipped with a
    warning and recorded in ``skipped`` at its own index (later frames keep theirs); a file cut short
    warns how far it got (``ended_early``).
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
        return self._info[2]


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
