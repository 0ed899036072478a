from __future__ import annotations

import pytest
import torch

from emolens.training.models import (
    DEFAULT_ARCH,
    Residual,
    VggFace48,
    count_multiply_adds,
    count_parameters,
    create_model,
    list_models,
)


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


def test_residual_variant_keeps_weights_and_adds_identity_paths():
    plain, res = create_model("vggface48"), create_model("vggface48_res")
    assert count_parameters(res) == count_parameters(plain)
    blocks = [m for m in res.modules() if isinstance(m, Residual)]
    assert len(blocks) == 2  # the 12x12 and 6x6 stages: 3 convolutions each, the last two paired
    assert not any(isinstance(m, Residual) for m in plain.modules())
    # a block whose body outputs zero passes its input through unchanged
    block = blocks[0].eval()
    torch.nn.init.zeros_(block.body[-2].weight)
    torch.nn.init.zeros_(block.body[-2].bias)
    x = torch.rand(2, 128, 12, 12)
    torch.testing.assert_close(block(x), x)


def test_residual_pairs_only_whole_pairs():
    depths = [
        sum(isinstance(m, torch.nn.Conv2d) for m in VggFace48(depths=(d,) * 4, residual=True).modules())
        for d in (1, 2, 3, 4, 5)
    ]
    assert depths == [4, 8, 12, 16, 20]  # every convolution kept, whatever the depth
    blocks = sum(isinstance(m, Residual) for m in VggFace48(depths=(1, 2, 4, 5), residual=True).modules())
    assert blocks == 0 + 0 + 1 + 2


def test_multiply_adds_match_a_count_by_hand():
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),  # 48*48 pixels x 9 taps x 1 input x 4 outputs
        torch.nn.Conv2d(4, 4, 3, padding=1, stride=2, groups=4),  # depthwise: 24*24 x 9 x 1 x 4
        torch.nn.Conv2d(4, 6, 1),  # pointwise: 24*24 x 4 x 6
        torch.nn.Flatten(),
        torch.nn.Linear(6 * 24 * 24, 7),
    )
    assert count_multiply_adds(net) == 48 * 48 * 9 * 4 + 24 * 24 * 9 * 4 + 24 * 24 * 4 * 6 + 6 * 24 * 24 * 7
    assert net.training  # the count leaves the model as it found it


def test_compact_model_is_within_its_budget():
    compact, accurate = create_model("sepface48"), create_model("vggface48")
    assert count_multiply_adds(accurate) == 139_273_984
    assert count_multiply_adds(compact) <= 25_000_000
    assert count_multiply_adds(accurate) >= 5 * count_multiply_adds(compact)
    assert any(isinstance(m, Residual) for m in compact.modules())
    slim = create_model("vggface48_slim")  # the shipped compact model's
    assert count_multiply_adds(slim) <= 25_000_000 and count_multiply_adds(accurate) >= 5 * count_multiply_adds(slim)


def test_per_image_standardisation():
    from emolens.training.models import PerImageStandardize

    faces = torch.rand(3, 1, 48, 48) * 200
    centred = faces - faces.mean(dim=(1, 2, 3), keepdim=True)
    expected = centred / (faces.std(dim=(1, 2, 3), keepdim=True, unbiased=False) + 1.0)
    torch.testing.assert_close(PerImageStandardize()(faces), expected)
    # blind to brightness; a flat face stays flat rather than blown up into noise
    torch.testing.assert_close(PerImageStandardize()(faces + 40), expected, atol=1e-4, rtol=1e-4)
    assert not PerImageStandardize()(torch.full((1, 1, 48, 48), 128.0)).any()
