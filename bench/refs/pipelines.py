"""Reference nucleus pipelines, for comparison only (benchmark, never the
product): scikit-image's textbook pipeline and an OpenCV pipeline. Both
take an RGB uint8 image and the pixel size, and return a label image.

  skimage: rgb2hed -> hematoxylin -> Gaussian -> Otsu -> holes filled,
           small objects removed -> distance transform -> peak_local_max
           (min_distance ~ 2.5 um) -> watershed (the scikit-image gallery's
           recipe);
  opencv:  OD with numpy, hematoxylin by the Ruifrok-Johnston inverse ->
           cv2.GaussianBlur -> cv2.threshold(OTSU) -> cv2.morphologyEx
           open -> cv2.distanceTransform -> local maxima (cv2.dilate) as
           markers -> cv2.watershed (the OpenCV tutorial's recipe).
"""
import numpy as np
from scipy import ndimage as ndi


def skimage_nuclei(rgb, mpp, sigma_um=1.0, min_area_um2=10, min_distance_um=2.5):
    from skimage.color import rgb2hed
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian, threshold_otsu
    from skimage.morphology import remove_small_objects
    from skimage.segmentation import watershed

    h = rgb2hed(rgb)[..., 0]
    h = gaussian(h, sigma=sigma_um / mpp)
    mask = h > threshold_otsu(h)
    mask = ndi.binary_fill_holes(mask)
    mask = remove_small_objects(mask, int(min_area_um2 / mpp ** 2))
    dist = ndi.distance_transform_edt(mask)
    md = max(1, int(round(min_distance_um / mpp)))
    peaks = peak_local_max(dist, min_distance=md, labels=ndi.label(mask)[0], exclude_border=False)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-dist, markers, mask=mask)


_RJ = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
_RJ = _RJ / np.linalg.norm(_RJ, axis=1, keepdims=True)
_RJ_INV = np.linalg.inv(_RJ)


def opencv_nuclei(rgb, mpp, sigma_um=1.0, min_distance_um=2.5):
    import cv2

    od = -np.log10(np.maximum(rgb.astype(np.float32), 1) / 255.0)
    h = od.reshape(-1, 3) @ _RJ_INV[:, 0].astype(np.float32)
    h = h.reshape(rgb.shape[:2])
    h8 = np.clip(h * 255 / 1.5, 0, 255).astype(np.uint8)
    s = sigma_um / mpp
    k = int(2 * round(3 * s) + 1)
    h8 = cv2.GaussianBlur(h8, (k, k), s)
    _, mask = cv2.threshold(h8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    dist = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
    md = max(1, int(round(min_distance_um / mpp)))
    peaks = (dist >= cv2.dilate(dist, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * md + 1, 2 * md + 1)))) & (dist > 1)
    _, markers = cv2.connectedComponents(peaks.astype(np.uint8))
    markers = markers.astype(np.int32)
    markers[mask == 0] = 0
    unknown = (mask > 0) & (markers == 0)
    markers = markers + 1
    markers[unknown] = 0
    cv2.watershed(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), markers)
    return np.where(markers > 1, markers - 1, 0).astype(np.int32)
