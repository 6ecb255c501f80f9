"""Loading published Caduceus folders: state dicts built here with upstream's module names and shapes (HF
``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``), then logits compared with a forward pass
written from upstream's equations (float64, a sequential scan), and the errors of a bad folder.

The oracle follows upstream's modules term by term: ``RCPSEmbedding`` (concat of E[x] and the L- and
channel-flipped embedding of the reverse complement), ``BiMambaWrapper`` (forward Mamba plus the flipped
Mamba of the flipped input), ``RCPSMambaBlock`` (fused path: the kernel reads the second half of the stream as
the forward strand; unfused path: ``RCPSAddNormWrapper``), ``RCPSWrapper``, the final norm and ``RCPSLMHead``.
"""
import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from mamba_bio_audio.models import CaduceusForMaskedLM, CaduceusForSequenceClassification, load_pretrained
from mamba_bio_audio.tokenizers import NucleotideTokenizer

D, E, N, K, V, LAYERS = 8, 16, 4, 4, 16, 2
R = math.ceil(D / 16)
COMPLEMENT = NucleotideTokenizer().complement_array(V).tolist()
EMB = "caduceus.backbone.embeddings.word_embeddings"


def hf_config(rcps: bool, fused: bool, **extra) -> dict:
    """An upstream config.json (vocab_size already padded and complement_map with string keys, as HF saves)."""
    return {"architectures": ["CaduceusForMaskedLM"], "model_type": "caduceus", "transformers_version": "4.38.1",
            "auto_map": {"AutoConfig": "configuration_caduceus.CaduceusConfig"}, "torch_dtype": "float32",
            "d_model": D, "n_layer": LAYERS, "vocab_size": V, "pad_vocab_size_multiple": 8,
            "ssm_cfg": {"d_state": N, "d_conv": K, "expand": 2, "dt_min": 0.001, "dt_max": 0.1,
                        "dt_init_floor": 1e-4, "conv_bias": True, "bias": False},
            "rms_norm": True, "fused_add_norm": fused, "residual_in_fp32": False, "norm_epsilon": 1e-5,
            "initializer_cfg": {"initializer_range": 0.02, "rescale_prenorm_residual": True,
                                "n_residuals_per_layer": 1},
            "bidirectional": True, "bidirectional_strategy": "add", "bidirectional_weight_tie": True, "rcps": rcps,
            "complement_map": {str(i): c for i, c in enumerate(COMPLEMENT)}, "gradient_checkpointing_stride": 1,
            "pad_token_id": 4, **extra}


def upstream_state_dict(rcps: bool, fused: bool, seed: int = 0) -> dict:
    """Random tensors under upstream's names and shapes, every shared tensor under each of its names."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=0.3):
        return torch.randn(*shape, generator=g) * scale

    sd = {}
    for i in range(LAYERS):
        mixer = f"caduceus.backbone.layers.{i}.mixer." + ("submodule." if rcps else "")
        for direction in ("mamba_fwd", "mamba_rev"):
            p = mixer + direction + "."
            sd[p + "in_proj.weight"] = rand(2 * E, D)
            sd[p + "conv1d.weight"] = rand(E, 1, K)
            sd[p + "conv1d.bias"] = rand(E, scale=0.1)
            sd[p + "x_proj.weight"] = rand(R + 2 * N, E)
            sd[p + "dt_proj.weight"] = rand(E, R)
            dt = 0.001 + torch.rand(E, generator=g) * 0.1
            sd[p + "dt_proj.bias"] = dt + torch.log(-torch.expm1(-dt))
            sd[p + "A_log"] = torch.log(torch.arange(1.0, N + 1).repeat(E, 1)) + rand(E, N, scale=0.1)
            sd[p + "D"] = 1.0 + rand(E, scale=0.1)
            sd[p + "out_proj.weight"] = rand(D, E)
        for name in ("in_proj.weight", "out_proj.weight"):  # bidirectional_weight_tie
            sd[f"{mixer}mamba_rev.{name}"] = sd[f"{mixer}mamba_fwd.{name}"]
        norm = f"caduceus.backbone.layers.{i}.norm." + ("submodule." if rcps and not fused else "")
        sd[norm + "weight"] = 1.0 + rand(D, scale=0.2)
    sd["caduceus.backbone.norm_f." + ("submodule." if rcps and not fused else "") + "weight"] = 1.0 + rand(D, scale=0.2)
    weight = rand(V, D, scale=0.5)
    if rcps:
        sd[f"{EMB}.embedding.weight"] = sd["lm_head.lm_head.weight"] = weight
        sd[f"{EMB}.complement_map"] = sd["lm_head.complement_map"] = torch.tensor(COMPLEMENT)
    else:
        sd[f"{EMB}.weight"] = sd["lm_head.weight"] = weight
    return sd


# ---------------------------------------------------------------------------------------------------- oracle


def _flip(x):
    return x.flip(-2, -1)


def _rms(x, w, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _mamba(p: dict, x: torch.Tensor) -> torch.Tensor:
    """Mamba-1 from its equations: x (B, L, D) → (B, L, D), float64, one scan step per position."""
    xz = x @ p["in_proj.weight"].T
    u, z = xz.split(E, dim=-1)
    padded = F.pad(u.transpose(1, 2), (K - 1, 0))
    w = p["conv1d.weight"][:, 0]
    conv = sum(w[:, k, None] * padded[:, :, k:k + x.shape[1]] for k in range(K)) + p["conv1d.bias"][:, None]
    u = F.silu(conv).transpose(1, 2)  # (B, L, E)
    dt_low, Bm, Cm = (u @ p["x_proj.weight"].T).split([R, N, N], dim=-1)
    dt = F.softplus(dt_low @ p["dt_proj.weight"].T + p["dt_proj.bias"])
    A = -torch.exp(p["A_log"])
    h = torch.zeros(x.shape[0], E, N, dtype=x.dtype)
    ys = []
    for t in range(x.shape[1]):
        h = torch.exp(dt[:, t, :, None] * A) * h + dt[:, t, :, None] * Bm[:, t, None, :] * u[:, t, :, None]
        ys.append((h * Cm[:, t, None, :]).sum(-1) + p["D"] * u[:, t])
    y = torch.stack(ys, dim=1) * F.silu(z)
    return y @ p["out_proj.weight"].T


def _bimamba(sd: dict, prefix: str, x: torch.Tensor) -> torch.Tensor:
    fwd = {k[len(prefix + "mamba_fwd."):]: v for k, v in sd.items() if k.startswith(prefix + "mamba_fwd.")}
    rev = {k[len(prefix + "mamba_rev."):]: v for k, v in sd.items() if k.startswith(prefix + "mamba_rev.")}
    return _mamba(fwd, x) + _mamba(rev, x.flip(1)).flip(1)


def upstream_logits(sd: dict, rcps: bool, fused: bool, ids: torch.Tensor, complement=COMPLEMENT) -> torch.Tensor:
    sd = {k: v.double() if v.is_floating_point() else v for k, v in sd.items()}
    comp = torch.tensor(complement)
    if rcps:
        weight = sd[f"{EMB}.embedding.weight"]
        rc = torch.gather(comp.expand(ids.shape[0], -1), 1, ids.flip(-1))
        h = torch.cat([weight[ids], _flip(weight[rc])], dim=-1)
    else:
        h = sd[f"{EMB}.weight"][ids]
    r = None
    for i in range(LAYERS):
        base = f"caduceus.backbone.layers.{i}."
        if not rcps:
            r = h if r is None else h + r
            h = _bimamba(sd, base + "mixer.", _rms(r, sd[base + "norm.weight"]))
            continue
        if fused:  # fused_add_norm_fn on hidden_states[..., D:] as "fwd", flipped [..., :D] as "rc"
            w = sd[base + "norm.weight"]
            res_fwd = h[..., D:] + (0 if r is None else r[..., D:])
            res_rc = _flip(h[..., :D]) + (0 if r is None else _flip(r[..., :D]))
            h = torch.cat([_rms(res_fwd, w), _flip(_rms(res_rc, w))], dim=-1)
            r = torch.cat([res_fwd, _flip(res_rc)], dim=-1)
        else:  # RCPSAddNormWrapper
            w = sd[base + "norm.submodule.weight"]
            if r is None:
                r = h
                h = torch.cat([_rms(h[..., :D], w), _flip(_rms(_flip(h[..., D:]), w))], dim=-1)
            else:
                res_fwd = h[..., :D] + r[..., :D]
                res_rc = _flip(h[..., D:]) + _flip(r[..., D:])
                r = torch.cat([res_fwd, _flip(res_rc)], dim=-1)
                h = torch.cat([_rms(res_fwd, w), _flip(_rms(res_rc, w))], dim=-1)
        mixer = base + "mixer.submodule."
        h = torch.cat([_bimamba(sd, mixer, h[..., :D]), _flip(_bimamba(sd, mixer, _flip(h[..., D:])))], dim=-1)
    norm_f = sd.get("caduceus.backbone.norm_f.weight", sd.get("caduceus.backbone.norm_f.submodule.weight"))
    s = h + r
    if rcps:
        h = torch.cat([_rms(s[..., :D], norm_f), _flip(_rms(_flip(s[..., D:]), norm_f))], dim=-1)
        weight = sd["lm_head.lm_head.weight"]
        return h[..., :D] @ weight.T + h[..., D:].flip(-1) @ weight[comp].T
    return _rms(s, norm_f) @ sd["lm_head.weight"].T


def write_folder(folder, config: dict, sd: dict, fmt: str):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    if fmt == "bin":  # torch.save keeps every name of a shared tensor
        torch.save(sd, folder / "pytorch_model.bin")
    else:  # safetensors stores a shared tensor once
        kept, seen = {}, set()
        for key, tensor in sd.items():
            if tensor.data_ptr() not in seen:
                seen.add(tensor.data_ptr())
                kept[key] = tensor.contiguous()
        save_file(kept, str(folder / "model.safetensors"))
    return folder


IDS = torch.randint(7, 12, (2, 16), generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize(("rcps", "fused", "fmt"), [(False, True, "safetensors"), (False, False, "bin"),
                                                    (True, True, "safetensors"), (True, False, "bin")])
def test_published_layouts_load_and_match_the_equations(tmp_path, rcps, fused, fmt):
    sd = upstream_state_dict(rcps, fused)
    folder = write_folder(tmp_path / "hub", hf_config(rcps, fused), sd, fmt)
    model = CaduceusForMaskedLM.from_pretrained(folder)
    assert model.config.rcps is rcps and model.config.fused_add_norm is fused
    assert type(load_pretrained(folder)) is CaduceusForMaskedLM  # the registry reads the published layout too
    with torch.no_grad():
        logits = model(IDS).logits
    expected = upstream_logits(sd, rcps, fused, IDS)
    assert (logits.double() - expected).abs().max() < 1e-5
    assert expected.abs().max() > 0.1


def test_round_trip_through_our_folder(tmp_path):
    folder = write_folder(tmp_path / "hub", hf_config(True, True), upstream_state_dict(True, True), "safetensors")
    model = CaduceusForMaskedLM.from_pretrained(folder)
    ours = model.save_pretrained(tmp_path / "ours")
    assert json.loads((ours / "config.json").read_text())["architecture"] == "caduceus"
    again = load_pretrained(ours)
    assert type(again) is CaduceusForMaskedLM and again.config == model.config
    with torch.no_grad():
        assert torch.equal(again(IDS).logits, model(IDS).logits)
    rev = again.caduceus.backbone.layers[0].mixer.submodule.mamba_rev
    fwd = again.caduceus.backbone.layers[0].mixer.submodule.mamba_fwd
    assert rev.in_proj.weight is fwd.in_proj.weight


def test_a_folder_saved_with_the_earlier_spelling_still_loads(tmp_path):
    """Our Caduceus folders written before the one spelling carry ``tie_word_embeddings``: read as
    ``tie_embeddings``."""
    folder = write_folder(tmp_path / "hub", hf_config(False, True), upstream_state_dict(False, True), "safetensors")
    ours = CaduceusForMaskedLM.from_pretrained(folder).save_pretrained(tmp_path / "ours")
    config = json.loads((ours / "config.json").read_text())
    assert config.pop("tie_embeddings") is True
    (ours / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": True}))
    model = load_pretrained(ours)
    embedding = model.caduceus.backbone.embeddings.word_embeddings
    assert model.config.tie_embeddings and model.lm_head.weight is embedding.weight
    (ours / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": False, "tie_embeddings": True}))
    with pytest.raises(ValueError, match="'tie_word_embeddings' .*earlier spelling of 'tie_embeddings'"):
        load_pretrained(ours)


def test_classifier_starts_from_a_published_lm(tmp_path):
    sd = upstream_state_dict(True, True)
    folder = write_folder(tmp_path / "hub", hf_config(True, True), sd, "bin")
    classifier = CaduceusForSequenceClassification.from_pretrained(folder, num_labels=3)
    assert classifier.score.weight.shape == (3, D)
    assert torch.equal(classifier.caduceus.backbone.norm_f.weight, sd["caduceus.backbone.norm_f.weight"])


def test_hyenadna_style_tokenizer_ids_are_permuted_into_ours(tmp_path):
    """A folder whose character tokenizer lists N A C G T (ids 7..11 = N, A, C, G, T): its rows are moved so
    that our ids give the logits the folder gives its own ids for the same DNA."""
    characters = ["N", "A", "C", "G", "T"]
    ours_to_theirs = {7: 8, 8: 9, 9: 10, 10: 11, 11: 7}  # our A C G T N -> their ids
    their_complement = list(range(V))
    for a, b in (("A", "T"), ("C", "G")):
        ia, ib = 7 + characters.index(a), 7 + characters.index(b)
        their_complement[ia], their_complement[ib] = ib, ia
    sd = upstream_state_dict(True, True)
    sd[f"{EMB}.complement_map"] = sd["lm_head.complement_map"] = torch.tensor(their_complement)
    config = hf_config(True, True, complement_map={str(i): c for i, c in enumerate(their_complement)})
    folder = write_folder(tmp_path / "hub", config, sd, "bin")
    (folder / "tokenizer_config.json").write_text(json.dumps({"characters": characters, "model_max_length": 1024}))
    model = CaduceusForMaskedLM.from_pretrained(folder)
    assert model.config.complement_map[7] == 10  # A <-> T in our ids
    expected = upstream_logits(sd, True, True, IDS.clone().apply_(lambda i: ours_to_theirs.get(i, i)),
                               their_complement)
    with torch.no_grad():
        logits = model(IDS).logits
    for ours, theirs in ours_to_theirs.items():
        assert (logits[..., ours].double() - expected[..., theirs]).abs().max() < 1e-5


def _folder_with(tmp_path, sd=None, config=None):
    return write_folder(tmp_path / "bad", config or hf_config(False, True), sd or upstream_state_dict(False, True),
                        "bin")


def test_missing_extra_and_misshaped_keys_are_named(tmp_path):
    sd = upstream_state_dict(False, True)
    missing = "caduceus.backbone.layers.1.mixer.mamba_rev.x_proj.weight"
    del sd[missing]
    with pytest.raises(ValueError, match=rf"missing key '{missing}'.*bidirectional"):
        CaduceusForMaskedLM.from_pretrained(_folder_with(tmp_path / "a", sd))
    sd = upstream_state_dict(False, True)
    sd["caduceus.backbone.layers.2.norm.weight"] = torch.ones(D)
    with pytest.raises(ValueError, match=r"unexpected key 'caduceus.backbone.layers.2.norm.weight'.*n_layer"):
        CaduceusForMaskedLM.from_pretrained(_folder_with(tmp_path / "b", sd))
    sd = upstream_state_dict(False, True)
    sd["caduceus.backbone.layers.0.mixer.mamba_fwd.A_log"] = torch.zeros(E, N + 1)
    with pytest.raises(ValueError, match=r"A_log' has shape \(16, 5\).*d_state"):
        CaduceusForMaskedLM.from_pretrained(_folder_with(tmp_path / "c", sd))
    with pytest.raises(ValueError, match=r"missing key .*word_embeddings.embedding.weight.*rcps"):
        CaduceusForMaskedLM.from_pretrained(_folder_with(tmp_path / "d", upstream_state_dict(False, True),
                                                         hf_config(True, True)))


def test_tied_copies_and_complement_buffers_must_agree(tmp_path):
    sd = upstream_state_dict(False, True)
    sd["caduceus.backbone.layers.0.mixer.mamba_rev.in_proj.weight"] = torch.zeros(2 * E, D)
    with pytest.raises(ValueError, match=r"mamba_rev.in_proj.weight.*bidirectional_weight_tie"):
        CaduceusForMaskedLM.from_pretrained(_folder_with(tmp_path / "a", sd))
    sd = upstream_state_dict(False, True)
    sd["lm_head.weight"] = torch.zeros(V, D)
    with pytest.raises(ValueError, match=r"lm_head.weight.*tie_embeddings"):
        CaduceusForMaskedLM.from_pretrained(_folder_with(tmp_path / "b", sd))
    sd = upstream_state_dict(True, True)
    sd["lm_head.complement_map"] = torch.arange(V)
    with pytest.raises(ValueError, match=r"'lm_head.complement_map' differs from the config field complement_map"):
        CaduceusForMaskedLM.from_pretrained(_folder_with(tmp_path / "c", sd, hf_config(True, True)))


def test_bad_upstream_configs_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"unknown Caduceus config field\(s\) \['bidirectional_mode'\]"):
        CaduceusForMaskedLM.from_pretrained(_folder_with(tmp_path / "a", config=hf_config(
            False, True, bidirectional_mode="x")))
    with pytest.raises(ValueError, match=r"CaduceusConfig.d_model must be an even integer with rcps"):
        CaduceusForMaskedLM.from_pretrained(_folder_with(tmp_path / "b", config=hf_config(True, True, d_model=7)))
