"""Loss landscapes: slices against the lesson's exact loss, filter normalisation, PCA, JSON,
and the torch glue's exact restore."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import needs

from lrscope.errors import InvalidParameterError
from lrscope.lab.linreg import Moments
from lrscope.landscape import (
    ArrayLoss,
    LandscapeResult,
    filter_normalized_direction,
    interpolation,
    pca_directions,
    pca_slice,
    plane_slice,
    random_slice,
)


def lesson_loss(data):
    x, y = data.x.astype(np.float64), data.y.astype(np.float64)

    def loss_at(p):
        err = float(p["w"][0]) * x + float(p["b"][0]) - y
        return float(np.mean(err * err))

    return loss_at


def test_slice_of_the_lesson_equals_the_analytic_loss_on_a_grid(lesson_data):
    moments = Moments.of(lesson_data)
    centre = {"w": np.array([0.3]), "b": np.array([-0.2])}
    model = ArrayLoss(lesson_loss(lesson_data), centre)
    d1 = {"w": np.array([1.0]), "b": np.array([0.0])}
    d2 = {"w": np.array([0.5]), "b": np.array([2.0])}  # not orthogonal, not unit: still exact
    result = plane_slice(model, d1, d2, span=1.5, points=13)
    a, b = np.meshgrid(result.alphas, result.betas)  # loss[i, j] is at (alphas[j], betas[i])
    expected = moments.loss(0.3 + a * 1.0 + b * 0.5, -0.2 + b * 2.0)
    np.testing.assert_allclose(result.loss, expected, rtol=1e-12, atol=1e-14)
    assert result.loss.shape == (13, 13)
    assert 0.0 in result.alphas and result.center_loss == pytest.approx(moments.loss(0.3, -0.2))


def test_filter_normalisation_gives_each_filter_the_weights_filter_norm():
    rng = np.random.default_rng(5)
    params = {
        "conv.weight": rng.normal(size=(4, 3, 3, 3)) * np.arange(1, 5)[:, None, None, None],
        "dense.weight": rng.normal(size=(6, 5)).astype(np.float32),
        "dense.bias": rng.normal(size=6),
        "norm.scale": np.ones(6),
        "scalar": np.array(2.0),
    }
    d = filter_normalized_direction(params, rng=0)
    for name in ("conv.weight", "dense.weight"):
        w = params[name].astype(np.float64)
        for i in range(w.shape[0]):
            assert np.linalg.norm(d[name][i]) == pytest.approx(np.linalg.norm(w[i]), rel=1e-9)
        assert d[name].shape == w.shape
        # not a scaled copy of the weights: a random direction
        assert abs(np.corrcoef(d[name].ravel(), w.ravel())[0, 1]) < 0.9
    for name in ("dense.bias", "norm.scale", "scalar"):
        assert not np.any(d[name]) and d[name].shape == np.shape(params[name])
    # seeded: same seed, same direction; another seed, another one
    again = filter_normalized_direction(params, rng=0)
    other = filter_normalized_direction(params, rng=1)
    assert np.array_equal(again["conv.weight"], d["conv.weight"])
    assert not np.array_equal(other["conv.weight"], d["conv.weight"])


def test_random_slice_moves_along_the_normalised_directions():
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(3, 4)), "b": rng.normal(size=3)}
    seen = []

    def loss_at(p):
        seen.append({k: v.copy() for k, v in p.items()})
        return float((p["w"] ** 2).sum() + (p["b"] ** 2).sum())

    result = random_slice(ArrayLoss(loss_at, params), span=0.5, points=3, seed=3)
    assert result.method == "random" and result.loss.shape == (3, 3)
    assert result.metadata["seed"] == 3
    # the bias never moves (zero direction); the centre evaluation is the weights themselves
    assert all(np.array_equal(p["b"], params["b"]) for p in seen)
    assert result.center_loss == pytest.approx(loss_at(params))
    corner = seen[0]["w"] - params["w"]  # (a, b) = (-0.5, -0.5)
    # both directions come from one generator seeded with `seed`, drawn in order
    rng3 = np.random.default_rng(3)
    d1 = filter_normalized_direction(params, rng3)
    d2 = filter_normalized_direction(params, rng3)
    np.testing.assert_allclose(corner, -0.5 * d1["w"] - 0.5 * d2["w"], rtol=1e-12)


def test_random_slice_refuses_a_model_with_only_1d_tensors(lesson_data):
    model = ArrayLoss(lesson_loss(lesson_data), {"w": np.array([0.0]), "b": np.array([0.0])})
    with pytest.raises(InvalidParameterError, match="2 or more dimensions"):
        random_slice(model)


def test_pca_directions_recover_a_known_planar_trajectory():
    # A trajectory in R^5 that moves in the plane of e1 (large) and e3 (small), ending at c.
    centre = np.array([1.0, -2.0, 0.5, 3.0, 0.0])
    t = np.linspace(0.0, 1.0, 40)
    coords_true = np.stack([4.0 * (1 - t), 0.5 * np.sin(6 * t)], axis=1)
    points = centre + coords_true[:, :1] * np.eye(5)[0] + coords_true[:, 1:] * np.eye(5)[2]
    trajectory = [{"a": p[:2].reshape(1, 2), "b": p[2:]} for p in points]
    d1, d2, ratio, coords = pca_directions(trajectory)
    flat = np.stack(
        [np.concatenate([d["a"].ravel(), d["b"]]) for d in (d1, d2)]
    )  # (2, 5) orthonormal rows spanning the plane of e1 and e3
    np.testing.assert_allclose(flat @ flat.T, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(flat[:, [1, 3, 4]], 0.0, atol=1e-12)
    centred = points - points[-1]
    # the plane holds the whole trajectory: the coordinates rebuild it exactly
    np.testing.assert_allclose(coords @ flat, centred, atol=1e-12)
    assert sum(ratio) == pytest.approx(1.0)
    # explained variance = eigenvalues of the 2x2 scatter matrix in the plane, largest first
    in_plane = centred[:, [0, 2]]
    eig = np.linalg.eigvalsh(in_plane.T @ in_plane)[::-1]
    np.testing.assert_allclose(ratio, eig / eig.sum(), rtol=1e-9)
    assert ratio[0] > ratio[1] > 0
    assert d1["a"].shape == (1, 2) and d2["b"].shape == (3,)


def test_pca_slice_draws_the_trajectory_on_the_surface():
    rng = np.random.default_rng(1)
    path = [{"w": rng.normal(size=(2, 2))} for _ in range(5)]

    def loss_at(p):
        return float((p["w"] ** 2).sum())

    result = pca_slice(ArrayLoss(loss_at, path[-1]), path, points=5)
    assert result.method == "pca" and result.trajectory.shape == (5, 2)
    assert np.abs(result.trajectory).max() <= result.alphas.max()
    assert result.explained_variance[0] >= result.explained_variance[1] > 0
    with pytest.raises(InvalidParameterError, match="at least 3"):
        pca_directions(path[:2])


def test_interpolation_goes_from_initial_to_final_weights(lesson_data):
    moments = Moments.of(lesson_data)
    start = {"w": np.array([0.0]), "b": np.array([-1.0])}
    end = {"w": np.array([0.1]), "b": np.array([0.5])}
    result = interpolation(ArrayLoss(lesson_loss(lesson_data), end), start, points=11)
    assert result.betas is None and result.loss.shape == (11,)
    assert 0.0 in result.alphas and 1.0 in result.alphas
    expected = moments.loss(0.1 * result.alphas, -1.0 + 1.5 * result.alphas)
    np.testing.assert_allclose(result.loss, expected, rtol=1e-10, atol=1e-12)


def test_landscape_json_round_trip(tmp_path):
    result = LandscapeResult(
        method="pca",
        alphas=np.linspace(-1, 1, 3),
        betas=np.linspace(-2, 2, 4),
        loss=np.arange(12.0).reshape(4, 3) * np.array([1, np.nan, np.inf]),
        explained_variance=(0.9, 0.05),
        trajectory=np.array([[0.5, 0.1], [0.0, 0.0]]),
        metadata={"model": "mlp"},
    )
    back = LandscapeResult.load(result.save(tmp_path / "l.json"))
    for name in ("alphas", "betas", "loss", "trajectory"):
        assert np.array_equal(getattr(back, name), getattr(result, name), equal_nan=True)
    assert back.explained_variance == result.explained_variance
    assert back.metadata == {"model": "mlp"} and back.method == "pca"


@pytest.mark.torch
@needs("torch")
def test_torch_glue_evaluates_the_loss_and_restores_the_model_bitwise():
    import torch

    from lrscope.adapters.torch_landscape import torch_loss_function
    from lrscope.testing import state_differences

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8),
        torch.nn.BatchNorm1d(8),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(8, 1),
    )
    model.train()
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng_before = torch.get_rng_state().clone()
    surface = torch_loss_function(model, torch.nn.functional.mse_loss, (x, y))
    assert set(surface.params) == {n for n, _ in model.named_parameters()}
    result = random_slice(surface, span=0.5, points=3, seed=0)
    assert result.loss.shape == (3, 3) and np.isfinite(result.loss).all()
    after = model.state_dict()
    assert state_differences(before, dict(after)) == []
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN running stats included
    assert torch.equal(torch.get_rng_state(), rng_before)  # dropout draws were forked
    # the loss at the centre is the model's own loss (eval mode: deterministic, no BN update)
    model.eval()
    surface_eval = torch_loss_function(model, torch.nn.functional.mse_loss, (x, y))
    with torch.no_grad():
        own = torch.nn.functional.mse_loss(model(x), y).item()
    assert surface_eval.loss_at(surface_eval.params) == pytest.approx(own, rel=1e-6)
    # moving the weights changes the loss; the model is still untouched afterwards
    moved = {k: v + 0.3 for k, v in surface_eval.params.items()}
    assert surface_eval.loss_at(moved) != pytest.approx(own)
    assert all(torch.equal(before[k], model.state_dict()[k]) for k in before)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"span": -1.0}, "Argument `span` .* low < high. Received: span=-1.0"),
        ({"span": (1.0, 0.0)}, r"Received: span=\(1.0, 0.0\)"),
        ({"span": "wide"}, "Received: span='wide'"),
        ({"points": 1}, "Argument `points` must be an integer >= 2"),
    ],
)
def test_bad_grid_options_name_the_argument(options, message):
    model = ArrayLoss(lambda p: 0.0, {"w": np.ones((2, 2))})
    d = {"w": np.eye(2)}
    with pytest.raises(InvalidParameterError, match=message):
        plane_slice(model, d, d, **options)
    with pytest.raises(InvalidParameterError, match="same keys"):
        plane_slice(model, {"v": np.eye(2)}, d)
