"""Lesion outlines and crops (:mod:`deepmt.imaging`), shared by ``predict``'s report and the studies' figures."""

import numpy as np

from deepmt.imaging import crop, overlay_masks


def test_overlay_outlines_each_lesion_type_in_its_colour():
    hr = np.full((32, 32, 3), 100, np.uint8)
    masks = np.zeros((4, 32, 32), bool)
    masks[0, 5, 5] = True  # MA
    masks[2, 20, 20] = True  # EX
    out = overlay_masks(hr, masks, alpha=1.0)
    assert out.dtype == np.float32 and out.shape == (32, 32, 3)
    ring = np.zeros((32, 32), bool)
    ring[4:7, 5] = ring[5, 4:7] = True  # the mask grown by one pixel (4-connected) at 32 px
    np.testing.assert_allclose(out[ring], np.broadcast_to([1.0, 0.0, 1.0], (5, 3)))  # MA magenta
    np.testing.assert_allclose(out[np.roll(ring, (15, 15), (0, 1))], np.broadcast_to([0.1, 1.0, 0.1], (5, 3)), rtol=1e-6)  # EX green
    np.testing.assert_allclose(out[4, 4], 100 / 255)  # outside the outline: the image
    np.testing.assert_allclose(out[12, 12], 100 / 255)  # elsewhere the image, in [0, 1]
    half = overlay_masks(hr, masks, alpha=0.5)
    np.testing.assert_allclose(half[5, 5], 0.5 * 100 / 255 + 0.5 * np.array([1.0, 0.0, 1.0]), rtol=1e-6)


def test_crop_centres_the_point_at_either_resolution_and_pads_with_zeros():
    img = np.arange(64 * 64).reshape(64, 64) + 1
    c = crop(img, 30, 20, 4)
    assert c.shape == (8, 8) and c[4, 4] == img[20, 30] and c[0, 0] == img[16, 26]
    lr = img[::4, ::4]  # HR point (x, y) lies at ((x - 1.5) / 4, (y - 1.5) / 4) in a x4 image
    c4 = crop(lr, 41.5, 21.5, 8, factor=4)
    assert c4.shape == (4, 4) and c4[2, 2] == lr[5, 10]
    edge = crop(img, 1, 1, 4)
    assert edge.shape == (8, 8) and (edge[:3] == 0).all() and edge[3, 3] == img[0, 0]
