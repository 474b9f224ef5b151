"""Control-accuracy evaluation: does a generated video follow the controls that drove it?

``image_metrics`` (PSNR, SSIM, background PSNR), ``expression_metrics`` (the expression
measured on the frames against the driving codes), ``head_pose`` (the head tracked on the
frames against the true head rotation), ``measure`` (one clip, all of them) and
``report`` (pooled figures, a table and a plot).
"""
