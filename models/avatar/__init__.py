"""The single-photo avatar: a portrait on the fitted anny upper body, rendered under new controls.

- :mod:`.photo`: the IMAGE as the avatar reads it (grayscale, alpha, size).
- :mod:`.segmentation`: MediaPipe's full-range face detector and selfie segmentation.
- :mod:`.photo_fit`: anny fitted to the photo, the face refined on the 478 face-mesh points.
- :mod:`.surface`: what each template vertex shows (the photo, its mirror, a fill; the inner mouth).
- :mod:`.layers`: hair, clothing and the rest as a mesh tied to the body.
- :mod:`.background`: the filled background on a plane behind, and the person's own colours.
- :mod:`.avatar`: the ``FACTORPORTRAIT_AVATAR`` value and ``build_avatar``.
- :mod:`.controls`: body track, expression and camera -> per-frame parameters.
- :mod:`.render`: ``render_avatar``: frames and the person's matte, in chunks.
"""
