"""Camera trajectory JSON files: exact round trip and clear errors."""
import json
import math

import pytest
import torch

from factorportrait.models.camera import paths as tr
from factorportrait.models.camera.trajectory import CameraTrajectory
from factorportrait.models.camera.files import (
    FORMAT,
    VERSION,
    trajectory_from_json,
    trajectory_to_dict,
    trajectory_to_json,
)
from factorportrait.models.errors import InputError


def varying_camera() -> CameraTrajectory:
    keys = [
        {"frame": 0, "yaw": -17.3, "pitch": 4.1, "roll": 2.2, "distance": 1.13, "fov": 31.7,
         "pixel_aspect": 1.07, "principal": [0.47, 0.531], "target": [0.013, 0.17, -0.021]},
        {"frame": 3, "yaw": 22.9, "pitch": -7.7, "fov": 44.4, "principal": [0.55, 0.49]},
        {"frame": 8, "yaw": 61.1, "roll": -3.3, "distance": 1.71, "pixel_aspect": 0.93},
    ]
    camera = tr.keyframed(9, json.dumps(keys))
    assert not camera.has_constant_intrinsics()
    return camera


def test_json_round_trip_is_exact():
    camera = varying_camera()
    text = trajectory_to_json(camera)
    back = trajectory_from_json(text)
    for name in ("w2c", "focal", "pixel_aspect", "principal"):
        a, b = getattr(camera, name), getattr(back, name)
        assert b.dtype == torch.float64
        assert torch.equal(a, b), name  # bit-exact: JSON floats use the shortest repr


def test_json_layout():
    camera = varying_camera()
    data = json.loads(trajectory_to_json(camera))
    assert data["format"] == FORMAT == "factorportrait-camera"
    assert data["version"] == VERSION == 1
    assert "OpenCV" in data["convention"] and "world-to-camera" in data["convention"]
    assert len(data["frames"]) == 9
    frame = data["frames"][4]
    assert frame["w2c"] == camera.w2c[4].tolist()
    assert frame["focal"] == float(camera.focal[4])
    assert frame["pixel_aspect"] == float(camera.pixel_aspect[4])
    assert frame["principal"] == camera.principal[4].tolist()
    assert trajectory_to_dict(camera) == data


def test_optional_intrinsics_default_to_square_centred():
    w2c = tr.static(1).w2c[0].tolist()
    text = json.dumps({"format": FORMAT, "version": 1, "frames": [{"w2c": w2c, "focal": 1.5}]})
    camera = trajectory_from_json(text)
    assert camera.pixel_aspect.tolist() == [1.0]
    assert camera.principal.tolist() == [[0.5, 0.5]]
    assert camera.focal.tolist() == [1.5]


def _valid() -> dict:
    return trajectory_to_dict(tr.orbit(3, tr.View(), 20))


def _error(text: str) -> InputError:
    with pytest.raises(InputError) as info:
        trajectory_from_json(text, input_name="camera_file", label="orbit.json")
    err = info.value
    assert err.input_name == "camera_file"
    assert err.message.startswith("orbit.json ")
    assert "'camera_file'" in str(err)
    return err


def test_invalid_json():
    err = _error('{"format": "factorportrait-camera", ')
    assert "not valid JSON" in err.message and "line 1" in err.message


@pytest.mark.parametrize("data", [
    {"format": "other-camera", "version": 1, "frames": []},
    {"version": 1, "frames": []},
    [1, 2, 3],
])
def test_wrong_format(data):
    err = _error(json.dumps(data))
    assert FORMAT in err.message
    assert "Save Camera Trajectory" in err.message


@pytest.mark.parametrize("version", [2, "1", None])
def test_wrong_version(version):
    data = _valid()
    data["version"] = version
    err = _error(json.dumps(data))
    assert repr(version) in err.message and "version 1" in err.message


@pytest.mark.parametrize("frames", [[], None, "x"])
def test_no_frames(frames):
    data = _valid()
    data["frames"] = frames
    assert "no frames" in _error(json.dumps(data)).message


def test_missing_w2c():
    data = _valid()
    del data["frames"][1]["w2c"]
    err = _error(json.dumps(data))
    assert "w2c" in err.message and "malformed" in err.message


def test_missing_focal():
    data = _valid()
    del data["frames"][0]["focal"]
    err = _error(json.dumps(data))
    assert "focal" in err.message


def test_ragged_or_wrong_shape_w2c():
    data = _valid()
    data["frames"][0]["w2c"] = data["frames"][0]["w2c"][:3]
    err = _error(json.dumps(data))
    assert "w2c" in err.message
    data = _valid()
    for f in data["frames"]:
        f["w2c"] = [row[:3] for row in f["w2c"][:3]]
    err = _error(json.dumps(data))
    assert "w2c" in err.message and "4, 4" in err.message


@pytest.mark.parametrize("transform", [
    lambda r: 2 * r,  # scaled
    lambda r: r @ torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)),  # reflection
    lambda r: r + 0.01,  # not orthonormal
])
def test_non_rotation_w2c(transform):
    data = _valid()
    w2c = torch.tensor(data["frames"][2]["w2c"], dtype=torch.float64)
    w2c[:3, :3] = transform(w2c[:3, :3])
    data["frames"][2]["w2c"] = w2c.tolist()
    err = _error(json.dumps(data))
    assert "rotation" in err.message


@pytest.mark.parametrize("field", ["w2c", "focal", "pixel_aspect", "principal"])
def test_nan(field):
    data = _valid()
    frame = data["frames"][1]
    if field == "w2c":
        frame["w2c"][0][3] = math.nan
    elif field == "principal":
        frame["principal"] = [math.nan, 0.5]
    else:
        frame[field] = math.nan
    text = json.dumps(data)
    assert "NaN" in text
    err = _error(text)
    assert field in err.message and "NaN" in err.message


@pytest.mark.parametrize("field", ["focal", "pixel_aspect"])
def test_non_positive_intrinsics(field):
    data = _valid()
    data["frames"][0][field] = 0.0
    assert "positive" in _error(json.dumps(data)).message


def test_default_input_name():
    with pytest.raises(InputError) as info:
        trajectory_from_json("nope")
    assert info.value.input_name == "trajectory"
    assert info.value.message.startswith("the text ")


def test_w2c_with_a_wrong_bottom_row_is_refused():
    w2c = tr.static(1).w2c.clone()
    w2c[0, 3] = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    with pytest.raises(InputError, match=r"\[0, 0, 0, 1\]"):
        CameraTrajectory.create(w2c, 1.8)


def test_float32_inputs_are_stored_as_float64():
    cam = CameraTrajectory(tr.static(1).w2c.float(), torch.ones(1), torch.ones(1),
                           torch.full((1, 2), 0.5))
    assert cam.w2c.dtype == cam.focal.dtype == torch.float64
    uvz = cam.project(torch.zeros(1, 3), 64, 48)
    torch.testing.assert_close(uvz[0, 0, :2], torch.tensor([32.0, 24.0], dtype=torch.float64))


def test_boolean_version_is_refused():
    text = trajectory_to_json(tr.static(1)).replace('"version": 1', '"version": true')
    with pytest.raises(InputError, match="version"):
        trajectory_from_json(text, "file", "'x.json'")
