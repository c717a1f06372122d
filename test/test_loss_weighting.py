"""Multi-task loss weighting: fixed (paper eq. 5), GradNorm and homoscedastic uncertainty."""

import math

import pytest
import torch
from torch import nn

from stereo_semantic_ros.losses import (
    FixedWeighting,
    GradNorm,
    UncertaintyWeighting,
    make_weighting,
    shared_parameter,
    task_losses,
)
from stereo_semantic_ros.networks import get_model
from stereo_semantic_ros.networks.contract import TASKS


def test_fixed_is_five_disparity_plus_one_segmentation():
    terms = {"disparity": torch.tensor(0.3), "segmentation": torch.tensor(2.0)}
    total, metrics = FixedWeighting(TASKS).combine(terms)
    assert total.item() == pytest.approx(5 * 0.3 + 1 * 2.0)
    assert metrics["weight_disparity"] == 5.0 and metrics["weight_segmentation"] == 1.0
    assert metrics["loss_disparity"] == pytest.approx(0.3)
    # single task: only its own term
    total, _ = FixedWeighting(("segmentation",)).combine({"segmentation": torch.tensor(2.0)})
    assert total.item() == pytest.approx(2.0)


def test_fixed_refuses_a_missing_task():
    with pytest.raises(ValueError, match="no loss for"):
        FixedWeighting(TASKS).combine({"disparity": torch.tensor(1.0)})


class Toy(nn.Module):
    """A shared linear layer feeding two linear heads (the GradNorm paper's toy set-up)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.shared = nn.Linear(4, 8)
        self.head_a = nn.Linear(8, 1)
        self.head_b = nn.Linear(8, 1)

    def forward(self, x):
        h = torch.tanh(self.shared(x))
        return self.head_a(h), self.head_b(h)


def toy_terms(model, x, scale_a=1.0, scale_b=1.0):
    a, b = model(x)
    return {
        "disparity": scale_a * (a**2).mean(),
        "segmentation": scale_b * (b**2).mean(),
    }


def run_gradnorm(rate_a: float, rate_b: float, steps: int = 20) -> dict[str, float]:
    """GradNorm on the toy model with the task losses pinned at ``rate * L(0)``.

    The value of each loss is replaced (its gradient is kept), so only the training rates
    ``L / L(0)`` differ between calls, not the gradients.
    """
    model = Toy()
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))
    gn = GradNorm(TASKS, model.shared.weight, alpha=1.5, lr=0.05)
    first = toy_terms(model, x)
    gn.combine(first)  # records L(0)
    initial = gn.initial_losses.clone()
    for _ in range(steps):
        terms = toy_terms(model, x)
        for i, (task, rate) in enumerate(zip(TASKS, (rate_a, rate_b))):
            value = terms[task]
            terms[task] = value - value.detach() + rate * initial[i]
        gn.combine(terms)
    weights = gn.weights()
    assert sum(weights.values()) == pytest.approx(2.0, abs=1e-5)  # renormalised to T = 2
    return weights


def test_gradnorm_raises_the_weight_of_the_task_that_trains_slower():
    """Same gradients; "disparity" has dropped to 10 % of its initial loss (trains fast) while
    "segmentation" has not moved: GradNorm must give segmentation more weight than it does
    when both train at the same rate."""
    equal = run_gradnorm(1.0, 1.0)
    skewed = run_gradnorm(0.1, 1.0)
    assert skewed["segmentation"] > equal["segmentation"] + 0.2, (skewed, equal)
    assert skewed["disparity"] < equal["disparity"] - 0.2
    assert skewed["segmentation"] > skewed["disparity"]
    # and the mirror image
    mirrored = run_gradnorm(1.0, 0.1)
    assert mirrored["disparity"] > equal["disparity"] + 0.2


def test_gradnorm_equalises_gradient_norms_at_equal_rates():
    """Equal training rates but task A's gradient 10x larger: its weight must go down."""
    model = Toy()
    x = torch.randn(16, 4)
    gn = GradNorm(TASKS, model.shared.weight, alpha=1.5, lr=0.05)
    for _ in range(15):
        gn.combine(toy_terms(model, x, scale_a=10.0, scale_b=1.0))
    w = gn.weights()
    assert w["disparity"] < w["segmentation"], w
    assert sum(w.values()) == pytest.approx(2.0, abs=1e-5)
    norms = gn.last_grad_norms
    # the weighted gradient norms are closer together than the 10x they started from
    assert norms["disparity"] / norms["segmentation"] < 5.0


def test_gradnorm_returns_the_loss_with_constant_weights():
    model = Toy()
    x = torch.randn(16, 4)
    gn = GradNorm(TASKS, model.shared.weight, initial={"disparity": 5.0, "segmentation": 1.0})
    assert gn.weights()["disparity"] == pytest.approx(2 * 5 / 6)
    terms = toy_terms(model, x)
    total, metrics = gn.combine(terms)
    expected = 2 * 5 / 6 * terms["disparity"] + 2 * 1 / 6 * terms["segmentation"]
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)
    total.backward()  # the network's backward still works after GradNorm's own gradients
    assert model.shared.weight.grad is not None
    assert "gradnorm_disparity" in metrics


def test_gradnorm_state_survives_a_round_trip():
    model = Toy()
    x = torch.randn(16, 4)
    gn = GradNorm(TASKS, model.shared.weight, lr=0.05)
    for _ in range(3):
        gn.combine(toy_terms(model, x, scale_a=10.0))
    other = GradNorm(TASKS, model.shared.weight, lr=0.05)
    other.load_state_dict(gn.state_dict())
    assert other.weights() == gn.weights()
    assert torch.equal(other.initial_losses, gn.initial_losses)
    assert other.optimizer.state_dict()["state"][0]["step"] == 3


def test_uncertainty_weights_are_learnable_and_get_gradients():
    uw = UncertaintyWeighting(TASKS)
    params = uw.parameters_for_network_optimizer()
    assert len(params) == 2 and all(p.requires_grad for p in params)
    terms = {"disparity": torch.tensor(2.0), "segmentation": torch.tensor(0.5)}
    total, metrics = uw.combine(terms)
    # s = 0: regression 0.5 * L_d, classification 1 * L_s
    assert total.item() == pytest.approx(0.5 * 2.0 + 0.5)
    assert metrics["weight_disparity"] == pytest.approx(0.5)
    total.backward()
    # d/ds (0.5 e^-s L + 0.5 s) = -0.5 L + 0.5 at s = 0
    assert uw.log_vars["disparity"].grad.item() == pytest.approx(-0.5 * 2.0 + 0.5)
    assert uw.log_vars["segmentation"].grad.item() == pytest.approx(-0.5 + 0.5)
    # a step of gradient descent lowers the weight of the larger-loss task... its s rises
    opt = torch.optim.SGD(params, lr=0.1)
    opt.step()
    assert uw.log_vars["disparity"].item() > 0
    assert uw.weights()["disparity"] < 0.5


def test_uncertainty_converges_to_the_loss_level():
    """Optimum of 0.5 e^-s L + 0.5 s: s = ln L (regression); of e^-s L + 0.5 s: s = ln 2L."""
    uw = UncertaintyWeighting(TASKS)
    opt = torch.optim.Adam(uw.parameters_for_network_optimizer(), lr=0.05)
    terms = {"disparity": torch.tensor(4.0), "segmentation": torch.tensor(0.25)}
    for _ in range(600):
        total, _ = uw.combine(terms)
        opt.zero_grad()
        total.backward()
        opt.step()
    assert uw.log_vars["disparity"].item() == pytest.approx(math.log(4.0), abs=0.02)
    assert uw.log_vars["segmentation"].item() == pytest.approx(math.log(0.5), abs=0.02)


def test_make_weighting_and_the_shared_layer_of_the_esp_network():
    model = get_model("esp_joint", max_disparity=16)
    w = shared_parameter(model)
    assert w is model.features.norm3[0].weight
    gn = make_weighting("gradnorm", TASKS, model=model)
    assert isinstance(gn, GradNorm)
    assert gn.weights()["disparity"] == pytest.approx(2 * 5 / 6)
    assert isinstance(make_weighting("uncertainty", TASKS), UncertaintyWeighting)
    assert isinstance(make_weighting("fixed", TASKS), FixedWeighting)
    with pytest.raises(ValueError, match="fixed, gradnorm, uncertainty"):
        make_weighting("equal", TASKS)
    with pytest.raises(ValueError, match="not a parameter"):
        shared_parameter(model, "features.nope.weight")


def test_gradnorm_on_the_esp_network_both_task_gradients_reach_the_shared_layer():
    torch.manual_seed(0)
    model = get_model("esp_joint", max_disparity=16, p=1, q=1).train()
    left, right = torch.randn(1, 3, 32, 64), torch.randn(1, 3, 32, 64)
    batch = {
        "disparity": torch.rand(1, 1, 32, 64) * 10,
        "valid": torch.ones(1, 1, 32, 64, dtype=torch.bool),
        "labels": torch.randint(0, 19, (1, 32, 64)),
    }
    gn = make_weighting("gradnorm", TASKS, model=model)
    terms = task_losses(model(left, right), batch, max_disparity=16)
    total, metrics = gn.combine(terms)
    assert metrics["gradnorm_disparity"] > 0 and metrics["gradnorm_segmentation"] > 0
    total.backward()


def test_task_losses_leave_out_disparities_beyond_the_range():
    pred = torch.full((1, 1, 2, 2), 10.0)
    target = torch.tensor([[[[10.0, 10.0], [10.0, 100.0]]]])
    valid = torch.ones(1, 1, 2, 2, dtype=torch.bool)
    terms = task_losses(
        {"disparity": pred}, {"disparity": target, "valid": valid}, max_disparity=64
    )
    assert terms["disparity"].item() == pytest.approx(0.0)
    terms = task_losses({"disparity": pred}, {"disparity": target, "valid": valid})
    assert terms["disparity"].item() > 0
