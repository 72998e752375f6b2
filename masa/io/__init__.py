"""Input / output: frame sources, MOTChallenge and JSON files, drawing and video writing.

Conventions: frame indices are 0-based in code and 1-based in MOTChallenge / JSON files
(``frame = index + 1``); track ids are written as ``id + 1``; frames are ``uint8[H, W, 3]`` RGB;
sources stream one frame at a time; bad inputs raise :class:`InputError` (missing paths
:class:`InputNotFoundError`, also a :class:`FileNotFoundError`) with a message naming the input.
"""

from masa.io.draw import draw_tracks, id_color
from masa.io.errors import InputError, InputNotFoundError
from masa.io.frames import (
    IMAGE_EXTENSIONS,
    CameraSource,
    Frame,
    FrameSource,
    ImageFolderSource,
    MotSequenceSource,
    StreamSource,
    VideoFileSource,
    is_url,
    natural_sort_key,
    open_source,
    read_image,
    to_rgb8,
)
from masa.io.json_io import JsonResultWriter, read_json_detections, read_json_records, read_json_tracks, write_json_detections
from masa.io.mot import (
    MotResultWriter,
    MotRows,
    SeqInfo,
    check_unique_ids,
    detection_frames,
    read_mot_detections,
    read_mot_rows,
    read_mot_tracks,
    read_seqinfo,
)
from masa.io.video_writer import VideoWriter

__all__ = [
    "IMAGE_EXTENSIONS",
    "CameraSource",
    "Frame",
    "FrameSource",
    "ImageFolderSource",
    "InputError",
    "InputNotFoundError",
    "JsonResultWriter",
    "MotResultWriter",
    "MotRows",
    "MotSequenceSource",
    "SeqInfo",
    "StreamSource",
    "VideoFileSource",
    "VideoWriter",
    "check_unique_ids",
    "detection_frames",
    "draw_tracks",
    "id_color",
    "is_url",
    "natural_sort_key",
    "open_source",
    "read_image",
    "read_json_detections",
    "read_json_records",
    "read_json_tracks",
    "read_mot_detections",
    "read_mot_rows",
    "read_mot_tracks",
    "read_seqinfo",
    "to_rgb8",
    "write_json_detections",
]
