import cv2
import numpy as np
import pytest

from aoi.data.synthetic import generate_template
from aoi.registration import RegistrationError, register


def _moved(img, dx, dy, angle):
    h, w = img.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    m[:, 2] += (dx, dy)
    return cv2.warpAffine(img, m, (w, h)), m


@pytest.mark.parametrize("dx,dy,angle", [(0, 0, 0), (5, -3, 0), (-8, 8, 0), (3, 2, 1.5), (-6, 4, -1.2)])
def test_recovers_shift_and_rotation(dx, dy, angle):
    template = generate_template(np.random.default_rng(1))
    test, m = _moved(template, dx, dy, angle)
    reg = register(test, template)
    assert abs(reg.rotation_deg - angle) < 0.15
    # The recovered map must send test pixels back onto the template: check at a few points.
    pts = np.array([[100, 100], [540, 120], [320, 320], [130, 500]], np.float64)
    template_pts = np.c_[pts, np.ones(4)] @ reg.matrix.T
    expected = np.c_[pts, np.ones(4)] @ cv2.invertAffineTransform(m).T
    assert np.abs(template_pts - expected).max() < 1.0
    assert reg.residual < 0.01


def test_brightness_and_noise_do_not_break_registration():
    template = generate_template(np.random.default_rng(2))
    test, _ = _moved(template, 4, -2, 0)
    rng = np.random.default_rng(3)
    test = np.clip(test * 0.8 + rng.normal(0, 8, test.shape), 0, 255).astype(np.uint8)
    reg = register(test, template)
    assert abs(reg.dx_px - 4) < 0.6 and abs(reg.dy_px + 2) < 0.6


def test_template_of_another_board_is_refused():
    a = generate_template(np.random.default_rng(4))
    b = generate_template(np.random.default_rng(5))
    with pytest.raises(RegistrationError, match="does not match"):
        register(a, b)


def test_template_of_another_size_is_refused():
    a = generate_template(np.random.default_rng(4))
    with pytest.raises(RegistrationError, match="differs"):
        register(a, a[:320, :320].copy())
