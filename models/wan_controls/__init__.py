"""Control videos for the Wan models users own (Animate, VACE, Fun): pose, depth, masks, face crops.

- :mod:`.openpose`: the OpenPose COCO-18 body and iBUG-68 face layouts, limbs and colours.
- :mod:`.pose_drawing`: keypoints -> skeleton images, in Wan-Animate's and DWPose's (VACE) styles.
"""
