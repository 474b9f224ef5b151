"""Mesh rendering in pure PyTorch: a z-buffer rasterizer and normal maps.

- :mod:`.rasterize`: projection, clipping and an exact, vectorised z-buffer rasterizer
  (front-most face, perspective-correct barycentrics and depth per pixel).
- :mod:`.screen_triangles`: the projected, snapped triangles both backends draw.
- :mod:`.normal_maps`: camera-space normal maps in the DESIGN.md encoding.
- :mod:`.moderngl_backend`: the optional OpenGL (EGL) backend; imported only when asked for.
"""
