"""Synthetic training clips: anny upper-body avatars with known identity, expression, head
pose and camera (the paper's synthetic sets).

- :mod:`.appearance`: a random identity (anny shape, skin / brow / lip / iris / clothing
  colours) and the scene's light.
- :mod:`.background`: a textured room around the subject, ray cast with the camera's rays.
- :mod:`.expression_curves`: smooth ARKit-52 face-action curves (talking, smiles, blinks...).
- :mod:`.motion`: head / neck / torso rotation curves and the cameras of each regime.
- :mod:`.render`: RGB frames of the painted, lit avatar over the room; normal maps as the
  "Render Normal Maps" node makes them.
- :mod:`.generate`: one clip from ``(seed, index)``, and resumable sharded generation.

The command line is ``training/generate_synthetic.py``.
"""
