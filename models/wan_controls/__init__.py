"""Control videos for the Wan models users own (Animate, VACE, Fun): pose, depth, masks, face crops.

- :mod:`.openpose`: the OpenPose COCO-18 body layout (keypoints, limbs, colours).
- :mod:`.pose_drawing`: keypoints -> skeleton images, in Wan-Animate's and DWPose's (VACE) styles.
- :mod:`.face68`: the 68 iBUG face points on anny's surface.
- :mod:`.skeleton`: a posed body's OpenPose points, projected, with what the camera sees of them.
- :mod:`.scene`: depth and coverage of the meshes and a background plane.
- :mod:`.depth`: depth as near-bright inverse depth, stretched over the clip.
- :mod:`.face_crops`: Wan-Animate's face box on the tracked face, and the crops.
- :mod:`.controls`: pose, depth and mask videos of a body track or an avatar, in chunks.
"""
