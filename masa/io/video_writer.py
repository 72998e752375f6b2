"""Write RGB frames to a video file with PyAV (H.264 / ``yuv420p``: plays in browsers).

::

    with VideoWriter("out.mp4", fps=25) as writer:
        for frame in source:
            writer.write(draw_tracks(frame.image, tracks))

* Codec ``libx264`` (falls back to ``mpeg4`` when this FFmpeg build has no libx264), pixel format
  ``yuv420p``, constant quality ``crf``. The container follows the file extension
  (``.mp4``, ``.mkv``, ``.avi``, ``.mov`` ...); ``.mp4`` files get ``+faststart``.
* The first frame fixes the size (or ``size=(height, width)`` given up front); a frame of another
  size raises :class:`ValueError`.
* ``yuv420p`` needs even dimensions: an odd height / width is padded by one row / column at the
  bottom / right that repeats the last row / column (the video is at most 1 pixel larger).
* :meth:`VideoWriter.close` flushes the encoder and finalises the container, so the file is valid
  also when an exception leaves the ``with`` block. Nothing is created when no frame is written.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["VideoWriter"]


class VideoWriter:
    """Encode ``uint8[H, W, 3]`` RGB frames to ``path`` at ``fps`` frames per second (see module docstring)."""

    def __init__(
        self,
        path: str | Path,
        fps: float,
        size: tuple[int, int] | None = None,
        *,
        codec: str = "libx264",
        crf: int = 23,
        preset: str = "veryfast",
    ) -> None:
        self.path = Path(path)
        try:
            fps_value = float(fps)
        except (TypeError, ValueError):
            raise ValueError(f"VideoWriter: fps must be a positive number, got {fps!r}") from None
        if not np.isfinite(fps_value) or fps_value <= 0:
            raise ValueError(f"VideoWriter: fps must be a positive number, got {fps!r}")
        self.fps = fps_value
        self._rate = Fraction(fps_value).limit_denominator(1001)
        if size is not None:
            size = (int(size[0]), int(size[1]))
            if size[0] <= 0 or size[1] <= 0:
                raise ValueError(f"VideoWriter: size must be (height, width) > 0, got {size}")
        self.size: tuple[int, int] | None = size
        self.codec = codec
        self.crf = int(crf)
        self.preset = preset
        self.frames_written = 0
        self._container: Any = None
        self._stream: Any = None
        self._closed = False
        if self.path.is_dir():
            raise ValueError(f"VideoWriter: {self.path} is a folder, expected a video file path")
        if not self.path.suffix:
            raise ValueError(f"VideoWriter: {self.path} has no file extension (e.g. .mp4) to choose the container")
        self.path.parent.mkdir(parents=True, exist_ok=True)

    # -- opening -------------------------------------------------------------------------------

    def _open(self, height: int, width: int) -> None:
        import av

        options = {"movflags": "+faststart"} if self.path.suffix.lower() in (".mp4", ".mov", ".m4v") else {}
        try:
            container = av.open(str(self.path), mode="w", options=options)
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            raise ValueError(f"VideoWriter: cannot create {self.path}: {exc}") from None
        stream = None
        last_error: Exception | None = None
        for codec in dict.fromkeys([self.codec, "libx264", "mpeg4"]):
            try:
                stream = container.add_stream(codec, rate=self._rate)
                break
            except (av.error.FFmpegError, ValueError) as exc:  # unknown codec / not in this build
                last_error = exc
        if stream is None:
            container.close()
            raise ValueError(f"VideoWriter: no usable video encoder for {self.path}: {last_error}")
        stream.width = width + (width % 2)
        stream.height = height + (height % 2)
        stream.pix_fmt = "yuv420p"
        if stream.codec_context.name == "libx264":
            stream.options = {"crf": str(self.crf), "preset": self.preset}
        else:
            stream.bit_rate = max(1_000_000, int(stream.width * stream.height * self.fps * 0.2))
        self._container = container
        self._stream = stream

    # -- writing ------------------------------------------------------------------------------

    def write(self, image: np.ndarray) -> None:
        """Append one ``uint8[H, W, 3]`` RGB frame."""
        import av

        if self._closed:
            raise ValueError(f"VideoWriter: {self.path} is closed")
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"VideoWriter: expected a uint8[H, W, 3] RGB image, got {image.dtype}{list(image.shape)}"
            )
        height, width = int(image.shape[0]), int(image.shape[1])
        if self.size is None:
            self.size = (height, width)
        elif (height, width) != self.size:
            raise ValueError(
                f"VideoWriter: {self.path}: frame {self.frames_written} has size (h={height}, w={width}), "
                f"expected (h={self.size[0]}, w={self.size[1]}) like the first frame"
            )
        if self._container is None:
            self._open(*self.size)
        if height % 2 or width % 2:
            image = np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = self.frames_written
        frame.time_base = 1 / self._rate
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    # -- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Flush the encoder and finalise the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._container is None:
            return
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # finalise the file, without hiding the original exception
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"VideoWriter({str(self.path)!r}, fps={self.fps}, size={self.size}, frames_written={self.frames_written})"
