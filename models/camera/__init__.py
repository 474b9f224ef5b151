"""The camera: trajectories and their conventions, camera paths, files, previews and Plücker rays."""
