"""The Mamba mixer's ablation switches (modules/ssm_ablation.py) against independent implementations of the
simplified layers: an explicit recurrence written from the definition, and for the LTI case (Δ, B, C all
input-independent) a causal convolution with the kernel K_{d,k} = Σ_n C_n exp(k Δ_d A_{d,n}) Δ_d B_n, no scan."""
import itertools

import pytest
import torch
import torch.nn.functional as F

from mamba_bio_audio.config import MambaConfig
from mamba_bio_audio.models import MambaLMHeadModel, load_pretrained
from mamba_bio_audio.modules import Mamba

D_MODEL, D_STATE, LENGTH = 8, 4, 11
SWITCHES = [dict(use_conv=c, selective_dt=d, selective_B=b, selective_C=s)
            for c, d, b, s in itertools.product((True, False), repeat=4)]


def _name(switches: dict) -> str:
    return "-".join(f"{k.split('_')[-1]}{int(v)}" for k, v in switches.items())


def _branch_input(mixer: Mamba, u: torch.Tensor, use_conv: bool):
    """x after the (optional) conv and SiLU, z; both (batch, L, d_inner)."""
    x, z = (u @ mixer.in_proj.weight.t()).chunk(2, dim=-1)
    if use_conv:
        w = mixer.conv1d.weight  # (d_inner, 1, d_conv)
        x = F.conv1d(x.transpose(1, 2), w, mixer.conv1d.bias, padding=w.shape[-1] - 1, groups=w.shape[0])
        x = x[..., :u.shape[1]].transpose(1, 2)
    return F.silu(x), z


def _selection(mixer: Mamba, x: torch.Tensor, s: dict):
    """Δ (batch, L, d_inner), B, C (batch, L, N) from the definition: the selective ones from x_proj's output
    (in the order Δ, B, C), the others constant."""
    proj, at = x @ mixer.x_proj.weight.t(), 0
    batch, length = x.shape[:2]
    if s["selective_dt"]:
        rank = mixer.dt_rank
        dt = F.softplus(proj[..., :rank] @ mixer.dt_proj.weight.t() + mixer.dt_proj.bias)
        at = rank
    else:
        dt = F.softplus(mixer.dt_proj.bias).expand(batch, length, -1)
    out = []
    for key, name in (("selective_B", "B"), ("selective_C", "C")):
        if s[key]:
            out.append(proj[..., at:at + D_STATE])
            at += D_STATE
        else:
            out.append(getattr(mixer.selection, name).expand(batch, length, D_STATE))
    assert at == proj.shape[-1]
    return dt, out[0], out[1]


def recurrence_oracle(mixer: Mamba, u: torch.Tensor, s: dict) -> torch.Tensor:
    """h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t x_t; y_t = <C_t, h_t> + D x_t; out = out_proj(y · SiLU(z))."""
    x, z = _branch_input(mixer, u, s["use_conv"])
    dt, B, C = _selection(mixer, x, s)
    A = -torch.exp(mixer.A_log)
    h = torch.zeros(u.shape[0], mixer.d_inner, D_STATE)
    ys = []
    for t in range(u.shape[1]):
        h = torch.exp(dt[:, t, :, None] * A) * h + dt[:, t, :, None] * B[:, t, None, :] * x[:, t, :, None]
        ys.append((h * C[:, t, None, :]).sum(-1) + mixer.D * x[:, t])
    return (torch.stack(ys, 1) * F.silu(z)) @ mixer.out_proj.weight.t()


def lti_oracle(mixer: Mamba, u: torch.Tensor, use_conv: bool) -> torch.Tensor:
    """The LTI layer as one causal convolution per channel with K_{d,k} = Σ_n C_n exp(k Δ_d A_{d,n}) Δ_d B_n."""
    x, z = _branch_input(mixer, u, use_conv)
    delta = F.softplus(mixer.dt_proj.bias)  # (d_inner,)
    A = -torch.exp(mixer.A_log)  # (d_inner, N)
    k = torch.arange(u.shape[1], dtype=torch.float32)
    decay = torch.exp(k[None, :, None] * delta[:, None, None] * A[:, None, :])  # (d_inner, L, N)
    kernel = (decay * mixer.selection.C * mixer.selection.B).sum(-1) * delta[:, None]  # (d_inner, L)
    flipped = kernel.flip(-1)[:, None, :]  # conv1d correlates: y_t = Σ_k K_k x_{t-k}
    y = F.conv1d(x.transpose(1, 2), flipped, padding=u.shape[1] - 1, groups=mixer.d_inner)[..., :u.shape[1]]
    y = y.transpose(1, 2) + mixer.D * x
    return (y * F.silu(z)) @ mixer.out_proj.weight.t()


def _mixer(**switches) -> Mamba:
    torch.manual_seed(0)
    mixer = Mamba(D_MODEL, d_state=D_STATE, layer_idx=0, **switches)
    with torch.no_grad():  # move the constants off their inits, so a swapped B / C or a missed one shows
        for name in ("B", "C"):
            if hasattr(getattr(mixer, "selection", None), name):
                getattr(mixer.selection, name).copy_(torch.randn(D_STATE))
        mixer.dt_proj.bias.add_(torch.linspace(-0.5, 1.5, mixer.d_inner))
    return mixer


@pytest.mark.parametrize("switches", SWITCHES, ids=_name)
def test_switched_layer_equals_the_recurrence(switches):
    mixer = _mixer(**switches)
    u = torch.randn(2, LENGTH, D_MODEL, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(mixer(u), recurrence_oracle(mixer, u, switches), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("use_conv", [True, False])
def test_non_selective_layer_is_a_causal_convolution(use_conv):
    mixer = _mixer(use_conv=use_conv, selective_dt=False, selective_B=False, selective_C=False)
    u = torch.randn(2, LENGTH, D_MODEL, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(mixer(u), lti_oracle(mixer, u, use_conv), rtol=1e-4, atol=1e-5)


def test_default_layer_is_unchanged_and_says_so():
    default = Mamba(D_MODEL, d_state=D_STATE, layer_idx=0)
    assert default.is_default_layer
    assert set(default.state_dict()) == {"in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight",
                                         "dt_proj.weight", "dt_proj.bias", "out_proj.weight", "A_log", "D"}
    torch.testing.assert_close(-torch.exp(default.A_log[0]), -torch.arange(1.0, D_STATE + 1))
    for switch in (dict(use_conv=False), dict(selective_B=False), dict(A_init="s4d_lin")):
        assert not Mamba(D_MODEL, d_state=D_STATE, layer_idx=0, **switch).is_default_layer, switch
    lin = Mamba(D_MODEL, d_state=D_STATE, A_init="s4d_lin")
    torch.testing.assert_close(-torch.exp(lin.A_log), torch.full((lin.d_inner, D_STATE), -0.5))
    lti = Mamba(D_MODEL, d_state=D_STATE, use_conv=False, selective_dt=False, selective_B=False, selective_C=False)
    assert {n for n, _ in lti.named_parameters()} == {"A_log", "D", "selection.B", "selection.C", "in_proj.weight",
                                                     "x_proj.weight", "dt_proj.bias", "out_proj.weight"}
    assert lti.x_proj.weight.numel() == 0


def _switched_config(**switches) -> MambaConfig:
    return MambaConfig(d_model=D_MODEL, n_layer=2, vocab_size=12, pad_token_id=4,
                       ssm_cfg={"d_state": D_STATE, **switches})


@pytest.mark.parametrize("switches", [dict(use_conv=False, selective_dt=False),
                                      dict(selective_B=False, selective_C=False, A_init="s4d_lin")], ids=str)
def test_step_after_prefill_equals_forward(switches, tmp_path):
    torch.manual_seed(0)
    model = MambaLMHeadModel(_switched_config(**switches)).eval()
    ids = torch.randint(7, 11, (2, 10), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = model(ids).logits
        state = model.allocate_inference_cache(2)
        logits, state = model.prefill(ids[:, :6], state)
        steps = [logits]
        for t in range(6, 10):
            step_logits, state = model.step(ids[:, t], state)
            steps.append(step_logits[:, None])
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-4, atol=1e-5)
    model.save_pretrained(tmp_path / "switched")  # the switches travel in config.json, the constants in the weights
    with torch.no_grad():
        torch.testing.assert_close(load_pretrained(tmp_path / "switched")(ids).logits, full)


@pytest.mark.parametrize("key, value", [("use_conv", "no"), ("selective_B", 0), ("A_init", "s4d_complex")])
def test_bad_switch_is_refused_naming_it(key, value):
    with pytest.raises(ValueError, match=rf"MambaConfig\.ssm_cfg\['{key}'\] must be"):
        _switched_config(**{key: value})
