"""Run a learnflux layer and its PyTorch twin on the same weights, input and upstream δ."""

from __future__ import annotations

import numpy as np


def compare_with_torch(case, dtype, rtol, atol, torch, batch=3, seed=5):
    rng = np.random.default_rng(seed)
    layer = case.make().astype(dtype)
    module = case.torch()
    module = module.double() if dtype == np.float64 else module.float()
    module.train()
    # same weights: learnflux's are copied into torch, matched by state_dict name
    state = module.state_dict()
    ours = layer.state_dict()
    for name, value in ours.items():
        assert name in state, f"{case.id}: torch has no {name!r} (has {list(state)})"
        state[name] = torch.from_numpy(np.array(value)).to(state[name].dtype)
    module.load_state_dict(state)

    x = case.sample(batch, rng, dtype)
    xs = x if isinstance(x, list) else [x]
    tx = [torch.from_numpy(xi.copy()) for xi in xs]
    for t in tx:
        if t.dtype.is_floating_point:
            t.requires_grad_(True)
    out = layer.forward(x)
    t_out = module(*tx)
    np.testing.assert_allclose(
        out, t_out.detach().numpy(), rtol=rtol, atol=atol, err_msg=f"{case.id}: forward"
    )
    up = rng.standard_normal(out.shape).astype(dtype)
    d_in = layer.backward(up)
    t_out.backward(torch.from_numpy(up))
    d_ins = list(d_in) if isinstance(x, list) else [d_in]
    assert len(d_ins) == len(tx), f"{case.id}: backward returned {len(d_ins)} δ for {len(tx)} inputs"
    for k, (t, d) in enumerate(zip(tx, d_ins, strict=True)):
        if t.dtype.is_floating_point:
            np.testing.assert_allclose(
                d, t.grad.numpy(), rtol=rtol, atol=atol, err_msg=f"{case.id}: input δ[{k}]"
            )
    t_params = dict(module.named_parameters())
    for name, p in layer.named_parameters():
        assert p.grad is not None, f"{case.id}: {name} has no gradient after backward"
        np.testing.assert_allclose(
            p.grad,
            t_params[name].grad.numpy(),
            rtol=rtol,
            atol=atol,
            err_msg=f"{case.id}: gradient of {name}",
        )
    t_buffers = dict(module.named_buffers())
    for name, b in layer.named_buffers():
        np.testing.assert_allclose(
            np.asarray(b, dtype=np.float64),
            t_buffers[name].numpy().astype(np.float64),
            rtol=rtol,
            atol=atol,
            err_msg=f"{case.id}: buffer {name}",
        )
