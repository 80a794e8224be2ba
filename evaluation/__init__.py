"""SpatialDreamer evaluation (paper 4): PSNR, SSIM, LPIPS, FVD and E_warp, the synthetic,
RealEstate10K and video benchmarks under one depth-alignment protocol, and readable reports.
Command line: `evaluation run --benchmark ...` (docs/evaluation.md)."""
