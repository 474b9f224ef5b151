"""scripts/face_identity.py (the benchmarks' dlib face-identity distance) on real photos and
video frames from scripts/real_inputs.py."""
import numpy as np
import pytest

pytest.importorskip("dlib")
cv2 = pytest.importorskip("cv2")

from face_identity import SAME_PERSON_THRESHOLD, face_descriptors, identity_distances  # noqa: E402
from real_inputs import real_input, real_inputs_dir  # noqa: E402

pytestmark = pytest.mark.skipif(
    not real_inputs_dir().is_dir(), reason="no .host/real_inputs: run scripts/setup_env.sh"
)


def _rgb(name: str) -> np.ndarray:
    image = cv2.imread(str(real_input(name)), cv2.IMREAD_COLOR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _video_frames(name: str, indices: list[int]) -> np.ndarray:
    capture = cv2.VideoCapture(str(real_input(name)))
    frames = []
    try:
        for index in indices:
            capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, frame = capture.read()
            assert ok, f"could not read frame {index} of {name}"
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    return np.stack(frames)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return _rgb("astronaut")


def test_descriptor_shape_and_torch_image_input(astronaut):
    torch = pytest.importorskip("torch")
    (from_uint8,) = face_descriptors(astronaut[None])
    assert from_uint8.shape == (128,) and from_uint8.dtype == np.float64
    (from_image,) = face_descriptors(torch.from_numpy(astronaut[None]).float() / 255.0)
    np.testing.assert_allclose(from_image, from_uint8, atol=1e-6)


def test_same_photo_is_distance_zero(astronaut):
    distances, found = identity_distances(astronaut, astronaut[None])
    assert found == 1.0
    assert distances[0] < 1e-6


def test_rescaled_jpeg_copy_is_close(astronaut):
    small = cv2.resize(astronaut, (448, 448), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 75])
    assert ok
    copy = cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    distances, found = identity_distances(astronaut, copy[None])
    assert found == 1.0
    assert distances[0] < 0.2


def test_different_person_is_far(astronaut):
    distances, found = identity_distances(astronaut, _rgb("single_face")[None])
    assert found == 1.0
    assert distances[0] > SAME_PERSON_THRESHOLD


def test_same_person_far_apart_in_a_video():
    # Frames 24 and 448 of the woman's video, 17.7 s apart, with different expressions.
    frames = _video_frames("woman_video", [24, 448])
    distances, found = identity_distances(frames[0], frames[1:])
    assert found == 1.0
    assert distances[0] < SAME_PERSON_THRESHOLD


def test_no_face_gives_none(astronaut):
    grey = np.full((1, 512, 512, 3), 128, dtype=np.uint8)
    assert face_descriptors(grey) == [None]
    distances, found = identity_distances(astronaut, np.concatenate([grey, astronaut[None]]))
    assert distances[0] is None and distances[1] < 1e-6
    assert found == 0.5
    with pytest.raises(ValueError, match="no face"):
        identity_distances(grey[0], astronaut[None])
