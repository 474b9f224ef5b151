"""Real videos -> training samples, with the pack's own tracking, normal maps and encoder.

- :mod:`.video_reader`: a video file -> frames at a fixed frame rate (PyAV).
- :mod:`.clips`: clip starts, the face-keeping crop, the crop's camera, the reference frame.
- :mod:`.prepare`: ``prepare_folder``: a folder of videos -> samples and a shard manifest,
  resumable (the CLI is ``training/prepare_videos.py``).
"""
