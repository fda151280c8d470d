"""Evaluation metrics: distortion (PSNR-Y, SSIM-Y) and perception (LPIPS-alex, NIQE)."""

from sr_keras.metrics.distortion import PSNRY, SSIMY, psnr_y, psnr_y_tf, ssim_y, ssim_y_tf
from sr_keras.metrics.lpips import LPIPS, LPIPSWeightsError, load_lpips, lpips_distance
from sr_keras.metrics.niqe import NIQEParamsError, load_niqe_params, niqe
from sr_keras.metrics.psnr import psnr

__all__ = ["LPIPS", "LPIPSWeightsError", "NIQEParamsError", "PSNRY", "SSIMY", "load_lpips", "load_niqe_params",
           "lpips_distance", "niqe", "psnr", "psnr_y", "psnr_y_tf", "ssim_y", "ssim_y_tf"]
