"""models.wan.latent_format.latent_rgb: the linear latent-to-colour map of previews."""
import torch

from factorportrait.models.wan.latent_format import latent_rgb


def test_each_channel_maps_to_its_colour_row():
    factors, bias = torch.rand(16, 3) * 0.4 - 0.2, torch.tensor([0.1, -0.05, 0.0])
    samples = torch.zeros(1, 16, 2, 3, 4)
    samples[0, 5, 1, 2, 3] = 1.0  # channel 5 at frame 1, row 2, column 3
    rgb = latent_rgb(samples, factors, bias)
    assert rgb.shape == (2, 3, 4, 3)
    torch.testing.assert_close(rgb[1, 2, 3], (factors[5] + bias + 1) / 2)
    torch.testing.assert_close(rgb[0, 0, 0], (bias + 1) / 2)
    assert latent_rgb(samples * 100, factors, bias).max() <= 1.0  # clamped
