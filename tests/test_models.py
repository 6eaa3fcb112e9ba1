"""Model registry and architectures: exact sizes, shapes, trainability, classical baselines."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # timm must never reach the network

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ferbench.errors import DataError, UnknownName
from ferbench.models import create_model, list_models, model_info, register_model
from ferbench.models.classical import FeatureSVM
from ferbench.models.microexpnet import MaxPool2dSame, pad_same

CLASSICAL = {"lbp_svm", "hog_svm"}
TEACHER = "inception_v3_teacher"
K = 5  # class count for the generic tests


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registered_names():
    assert list_models() == sorted(
        [
            "microexpnet_m", "microexpnet_s", "microexpnet_xs", "microexpnet_xxs", "inception_v3_teacher",
            "emotionnet_nano_a", "emotionnet_nano_b", "ed2l", "ed2l_baseline", "mobilenetv1_centerloss",
            "lopes_cnn", "lopes_cnn_3x3", "plain7cnn", "plain8cnn", "cspp", "lbp_svm", "hog_svm",
        ]
    )  # fmt: skip
    info = model_info("lopes_cnn")
    assert (info.family, info.paper, info.input_size) == ("lopes", "004", (1, 48, 48))
    assert info.input_sizes == ((1, 48, 48), (1, 32, 32))


def test_unknown_model_name_suggests_the_closest():
    with pytest.raises(UnknownName, match="did you mean `microexpnet_m`"):
        create_model("microexpnet_mm", 8)
    with pytest.raises(UnknownName, match="unknown model `nope`"):
        model_info("nope")


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        register_model("cspp", input_size=(1, 48, 48), family="x", paper="x")(lambda num_classes: None)


# --- exact sizes ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "name, count",
    [("microexpnet_m", 900_920), ("microexpnet_s", 232_184), ("microexpnet_xs", 120_728), ("microexpnet_xxs", 65_000)],
)
def test_microexpnet_parameter_counts_match_paper_table_1(name, count):
    assert n_params(create_model(name, 8)) == count


@pytest.mark.parametrize("name, count", [("emotionnet_nano_a", 231_992), ("emotionnet_nano_b", 135_876)])
def test_emotionnet_nano_parameter_counts(name, count):
    assert n_params(create_model(name, 7)) == count


def test_mobilenet_is_about_3_2_million_parameters():
    model = create_model("mobilenetv1_centerloss", 7)
    assert abs(n_params(model) - 3.2e6) / 3.2e6 < 0.01  # 3,213,575: backbone 3,206,400 + head 7,175
    assert n_params(model.head) == 1024 * 7 + 7


# --- MicroExpNet: TF 'SAME' padding and pooling candidates --------------------------------

def test_pad_same_is_asymmetric_like_tensorflow():
    padded = pad_same(torch.ones(1, 1, 21, 21), kernel=4, stride=2)  # needs 3 pixels: 1 before, 2 after
    assert padded.shape[-2:] == (24, 24)
    assert padded[0, 0, :, 5].tolist() == [0.0] + [1.0] * 21 + [0.0, 0.0]
    assert pad_same(torch.ones(1, 1, 84, 84), kernel=8, stride=2).shape[-1] == 90  # 3 + 3


def test_same_max_pool_ignores_padding():
    pooled = MaxPool2dSame(2, 2)(-torch.ones(1, 1, 11, 11))
    assert pooled.shape[-2:] == (6, 6)
    assert torch.all(pooled == -1)  # padded cells never win, even against negative values


def test_microexpnet_tf_same_sizes_84_42_21_11_6():
    model = create_model("microexpnet_m", 8)
    x, sides = torch.zeros(1, 1, 84, 84), []
    for layer in model.features:
        x = layer(x)
        if x.ndim == 4 and not isinstance(layer, nn.ReLU):
            sides.append(x.shape[-1])
    assert sides == [42, 21, 11, 6]


@pytest.mark.parametrize(
    "pooling, flat, fc1",
    [("v", 11 * 11 * 32, 256), ("p1", 11 * 11 * 32, 256), ("p2", 6 * 6 * 32, 768), ("p12", 6 * 6 * 32, 768)],
)
def test_microexpnet_pooling_candidates(pooling, flat, fc1):
    model = create_model("microexpnet_m", 8, pooling=pooling)
    assert model.features(torch.zeros(2, 1, 84, 84)).shape == (2, flat)
    assert (model.fc1.in_features, model.fc1.out_features) == (flat, fc1)
    assert model(torch.zeros(2, 1, 84, 84)).shape == (2, 8)


def test_microexpnet_pooling_pairs_have_equal_size_and_unknown_pooling_fails():
    counts = {p: n_params(create_model("microexpnet_xs", 8, pooling=p)) for p in ("v", "p1", "p2", "p12")}
    assert counts["v"] == counts["p1"] and counts["p2"] == counts["p12"]
    with pytest.raises(UnknownName, match="pooling"):
        create_model("microexpnet_xs", 8, pooling="p3")


# --- every model, every declared input size -----------------------------------------------

NEURAL_CASES = [
    pytest.param(name, size, id=f"{name}-{'x'.join(map(str, size))}")
    for name in list_models()
    if name not in CLASSICAL
    for size in model_info(name).input_sizes[: 1 if name == TEACHER else None]  # 299 x 299 is slow
]


def _build(name: str, size: tuple[int, int, int]) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, K, in_chans=size[0], input_size=size[1:])


@pytest.mark.parametrize("name, size", NEURAL_CASES)
def test_forward_gives_finite_logits(name, size):
    model = _build(name, size).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, *size))
    assert logits.shape == (2, K)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name, size", NEURAL_CASES)
def test_sgd_steps_reduce_the_loss(name, size):
    model = _build(name, size).train()
    x, y = torch.randn(4, *size, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 3])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def loss() -> torch.Tensor:
        torch.manual_seed(2)  # the same dropout masks each time
        return F.cross_entropy(model(x), y)

    before = loss().item()
    for _ in range(1 if name == TEACHER else 3):
        optimizer.zero_grad()
        loss().backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        optimizer.step()
    assert loss().item() < before


def test_models_accept_other_channels_and_sizes():
    for name, size in [("emotionnet_nano_a", (3, 40, 40)), ("cspp", (1, 64, 64)), ("microexpnet_s", (1, 48, 48))]:
        model = create_model(name, K, in_chans=size[0], input_size=size[1:]).eval()
        assert model(torch.zeros(2, *size)).shape == (2, K)
    with pytest.raises(ValueError, match="too small"):
        create_model("plain7cnn", K, input_size=(6, 6))


# --- feature-exposing models ---------------------------------------------------------------

def test_ed2l_parts_and_prediction():
    model = create_model("ed2l", K).eval()
    assert (model.scale, model.margin) == (30.0, 0.35)
    assert isinstance(model.dispeller, nn.Linear)
    assert (model.dispeller.in_features, model.dispeller.out_features) == (256, K)
    x = torch.randn(2, 1, 112, 96)
    with torch.no_grad():
        parts, logits = model.forward_parts(x), model(x)
    assert set(parts) == {"cos", "feat_p"}
    assert parts["cos"].shape == (2, K) and parts["feat_p"].shape == (2, 256)
    assert parts["cos"].abs().max() <= 1 + 1e-6
    torch.testing.assert_close(logits, 30.0 * parts["cos"])


def test_ed2l_baseline_has_no_dispelling_branch():
    model = create_model("ed2l_baseline", K).eval()
    full = create_model("ed2l", K)
    assert model.dispeller is None
    with torch.no_grad():
        assert set(model.forward_parts(torch.randn(2, 1, 112, 96))) == {"cos"}
    branch = n_params(full.dispelling) + n_params(full.dispeller)
    assert n_params(model) == n_params(full) - branch


def test_mobilenet_features_and_head():
    model = create_model("mobilenetv1_centerloss", K).eval()
    x = torch.randn(2, 1, 48, 48)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, 1024)
        torch.testing.assert_close(model(x), model.forward_head(features))


def test_mobilenet_checkpoint_adapts_stem_and_skips_classifier(tmp_path):
    import timm

    source = timm.create_model("mobilenetv1_100", pretrained=False, num_classes=10, in_chans=3).state_dict()
    torch.save({"state_dict": source}, tmp_path / "weights.pth")
    with pytest.warns(UserWarning, match="classifier"):
        model = create_model("mobilenetv1_centerloss", K, checkpoint_path=str(tmp_path / "weights.pth"))
    loaded = model.backbone.state_dict()
    torch.testing.assert_close(loaded["conv_stem.weight"], source["conv_stem.weight"].sum(dim=1, keepdim=True))
    torch.testing.assert_close(loaded["blocks.4.1.conv_pw.weight"], source["blocks.4.1.conv_pw.weight"])

    torch.save({k: v for k, v in source.items() if not k.startswith(("bn1.", "classifier."))}, tmp_path / "broken.pth")
    with pytest.raises(DataError, match="5 missing keys"):
        create_model("mobilenetv1_centerloss", K, in_chans=3, checkpoint_path=str(tmp_path / "broken.pth"))
    with pytest.raises(DataError, match="not found"):
        create_model("mobilenetv1_centerloss", K, checkpoint_path=str(tmp_path / "absent.pth"))


# --- classical models ----------------------------------------------------------------------

def _stripes(side: int, per_class: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal stripes (0), vertical stripes (1), checkerboard (2), with random phase and noise."""
    rng = np.random.default_rng(0)
    rows, cols = np.indices((side, side))
    images, labels = [], []
    for label, pattern in enumerate([lambda p: rows + p, lambda p: cols + p, lambda p: rows + cols + p]):
        for _ in range(per_class):
            phase = rng.integers(0, 8)
            image = np.where((pattern(phase) // 4) % 2 == 0, 200, 50) + rng.integers(-20, 20, (side, side))
            images.append(image.astype(np.uint8))
            labels.append(label)
    return np.stack(images), np.array(labels)


@pytest.mark.parametrize(
    "name, side, features",
    [("lbp_svm", 48, 360), ("lbp_svm", 64, 360), ("hog_svm", 48, 900), ("hog_svm", 64, 1764)],
)
def test_classical_models_separate_stripes(name, side, features):
    assert (1, side, side) in model_info(name).input_sizes
    images, labels = _stripes(side)
    model = create_model(name, 4, input_size=(side, side))  # class 3 never appears in training
    assert isinstance(model, FeatureSVM) and model.n_parameters == 0
    probs = model.fit(images, labels).predict_proba(images)
    assert probs.shape == (len(images), 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert np.all(probs[:, 3] == 0)
    assert (probs.argmax(axis=1) == labels).mean() == 1.0
    assert model.n_parameters == 3 * features + 3  # one-vs-rest: a weight vector + bias per seen class
    assert model.n_parameters_all_classes == 4 * features + 4  # what a fit on all 4 classes learns


def test_classical_binary_and_input_checks():
    images, labels = _stripes(48)
    two = labels < 2
    model = create_model("hog_svm", 3).fit(images[two], labels[two])
    probs = model.predict_proba(images[two])
    assert probs.shape == (two.sum(), 3) and (probs.argmax(axis=1) == labels[two]).all()
    with pytest.raises(ValueError, match="uint8 images N x 48 x 48"):
        model.predict_proba(images[:, :40, :40])
    with pytest.raises(ValueError, match="at least 2 classes"):
        create_model("lbp_svm", 3).fit(images[:3], labels[:3])
    with pytest.raises(ValueError, match="grayscale"):
        create_model("lbp_svm", 3, in_chans=3)
