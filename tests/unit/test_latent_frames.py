"""Wan's temporal packing: frames [0], [1..4], [5..8], ... -> latent frames 0, 1, 2, ..."""
import pytest
import torch

from factorportrait.models.errors import InputError
from factorportrait.models.wan.latent_frames import (
    check_frame_count,
    latent_frame_count,
    latent_frame_groups,
    nearest_valid_frame_counts,
)


@pytest.mark.parametrize("frames, expected", [(1, 1), (5, 2), (9, 3), (81, 21)])
def test_latent_frame_count(frames, expected):
    assert latent_frame_count(frames) == expected


def test_latent_frame_groups_nine_frames_exact():
    groups = latent_frame_groups(9)
    assert groups.dtype == torch.long
    assert groups.tolist() == [[0, 0, 0, 0], [1, 2, 3, 4], [5, 6, 7, 8]]


def test_latent_frame_groups_single_frame():
    assert latent_frame_groups(1).tolist() == [[0, 0, 0, 0]]


def test_latent_frame_groups_81_frames_cover_every_frame_once_in_order():
    groups = latent_frame_groups(81)
    assert groups.shape == (21, 4)
    assert groups[0].tolist() == [0, 0, 0, 0]
    # Latent frame t >= 1 owns frames 4t-3 .. 4t.
    for t in range(1, 21):
        assert groups[t].tolist() == [4 * t - 3, 4 * t - 2, 4 * t - 1, 4 * t]
    assert groups[1:].flatten().tolist() == list(range(1, 81))


@pytest.mark.parametrize("frames, below, above", [(80, 77, 81), (2, 1, 5), (83, 81, 85), (78, 77, 81)])
def test_check_frame_count_names_input_and_nearest_valid_counts(frames, below, above):
    with pytest.raises(InputError) as info:
        check_frame_count(frames, "frames")
    err = info.value
    assert err.input_name == "frames"
    assert "'frames'" in str(err)
    assert "4k+1" in str(err)
    assert str(below) in err.message and str(above) in err.message
    assert nearest_valid_frame_counts(frames) == (below, above)


def test_check_frame_count_zero_suggests_one():
    with pytest.raises(InputError) as info:
        check_frame_count(0, "num_frames")
    assert info.value.input_name == "num_frames"
    assert "0 frames" in info.value.message
    assert "Nearest valid count: 1." in info.value.message


@pytest.mark.parametrize("frames", [1, 5, 77, 81, 85])
def test_check_frame_count_accepts_4k_plus_1(frames):
    check_frame_count(frames, "frames")


@pytest.mark.parametrize("frames", [80, 0, 2])
def test_latent_frame_count_and_groups_refuse_invalid_counts(frames):
    with pytest.raises(InputError):
        latent_frame_count(frames)
    with pytest.raises(InputError):
        latent_frame_groups(frames)


@pytest.mark.parametrize("t_lat", [1, 2, 21, 76])
def test_video_frame_count_inverts_latent_frame_count(t_lat):
    from factorportrait.models.wan.latent_frames import video_frame_count

    assert latent_frame_count(video_frame_count(t_lat)) == t_lat
    assert video_frame_count(t_lat) == latent_frame_groups(video_frame_count(t_lat)).max() + 1
