from __future__ import annotations

import pytest
import torch

from emolens.training.models import DEFAULT_ARCH, count_parameters, create_model, list_models


@pytest.mark.parametrize("name", list_models())
def test_forward_shape_and_finite(name):
    model = create_model(name).eval()
    with torch.no_grad():
        out = model(torch.rand(3, 1, 48, 48) * 255)
    assert out.shape == (3, 7)
    assert torch.isfinite(out).all()


def test_seed2020_has_the_origins_parameter_count():
    # Keras reports 4,478,727 including BatchNorm moving statistics (3,968 non-trainable).
    assert count_parameters(create_model("seed2020")) == 4_474_759


def test_registry():
    assert DEFAULT_ARCH in list_models()
    with pytest.raises(ValueError, match="unknown model 'resnet9000'; choose from"):
        create_model("resnet9000")


def test_models_ignore_global_brightness_and_contrast():
    """Per-image standardisation: a face and a darker, flatter copy of it score alike."""
    model = create_model(DEFAULT_ARCH).eval()
    face = torch.rand(2, 1, 48, 48) * 200 + 20
    with torch.no_grad():
        a, b = model(face), model(face * 0.3 + 5)
    torch.testing.assert_close(a, b, atol=2e-2, rtol=0)  # eps=1 grey level differs slightly
