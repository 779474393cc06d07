"""Image restoration across degradation levels (DL-Net, arXiv 1904.09105): inpainting,
interpolation and super-resolution operators, their data, and the task protocol."""
