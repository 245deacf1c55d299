"""End to end: the C++ loop driving a (randomly initialised) U-Net exported to ONNX and run by
onnxruntime through an IO binding on the loop's own buffers, against the PyTorch reference
sampler running the same U-Net in PyTorch with the same noise."""
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch

from latentforge.runtime import _core
from latentforge.train import samplers
from latentforge.train.schedule import NoiseSchedule
from latentforge.train.unet import UNet

UNET_TOL = 1e-3  # max |C++ + onnxruntime − PyTorch reference| over all pixels
N = 4
SEED = 77
SCHEDULE = NoiseSchedule()


@pytest.fixture(scope="module")
def unet_and_session(tmp_path_factory):
    torch.manual_seed(0)
    model = UNet().eval()
    path = tmp_path_factory.mktemp("unet") / "unet.onnx"
    example = (torch.randn(2, 1, 28, 28), torch.tensor([999.0, 3.0]))
    batch = torch.export.Dim("batch")
    with warnings.catch_warnings():  # exporter chatter is not this test's business
        warnings.simplefilter("ignore")
        torch.onnx.export(model, example, str(path), input_names=["x", "t"],
                          output_names=["eps"], dynamo=True, verbose=False,
                          dynamic_shapes={"x": {0: batch}, "t": {0: batch}})
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return model, session


def iobinding_denoiser(session):
    """The runtime's pattern: bind the loop's x and t (the same arrays every step of one
    `sample` run) and one output buffer once; each call then only runs the graph. A new run
    allocates new arrays, so a denoiser reused across runs must rebind when x is new."""
    state = {}

    def denoiser(x, t):
        if "binding" not in state:
            eps = np.empty_like(x)
            binding = session.io_binding()
            binding.bind_ortvalue_input("x", ort.OrtValue.ortvalue_from_numpy(x))
            binding.bind_ortvalue_input("t", ort.OrtValue.ortvalue_from_numpy(t))
            binding.bind_ortvalue_output("eps", ort.OrtValue.ortvalue_from_numpy(eps))
            state.update(binding=binding, eps=eps, x=x, t=t)
        assert x is state["x"] and t is state["t"]
        session.run_with_iobinding(state["binding"])
        return state["eps"]

    return denoiser


def torch_reference(model, method, timesteps, capture, **kwargs):
    def noise(key, shape):
        return torch.from_numpy(_core.randn(SEED, shape, step=key))
    x0, states = samplers.sample(model, SCHEDULE, N, method, timesteps=timesteps, noise=noise,
                                 capture=set(capture), **kwargs)
    return x0.numpy(), {t: v.numpy() for t, v in states.items()}


def test_onnx_unet_matches_pytorch_on_one_step(unet_and_session):
    model, session = unet_and_session
    x = _core.randn(1, (3, 1, 28, 28))
    t = np.array([999.0, 500.0, 0.0], np.float32)
    ours = iobinding_denoiser(session)(x, t)
    with torch.no_grad():
        ref = model(torch.from_numpy(x), torch.from_numpy(t)).numpy()
    assert np.abs(ours - ref).max() <= 1e-4


@pytest.mark.parametrize("method, timesteps, kwargs", [
    ("ddim", SCHEDULE.ddim_timesteps(50), {"eta": 0.0}),
    ("ancestral", list(range(999, 949, -1)) + [0], {}),
], ids=["ddim50", "ancestral-999to950-then-0"])
def test_sample_with_onnxruntime_unet_matches_pytorch_reference(unet_and_session, method,
                                                                 timesteps, kwargs):
    model, session = unet_and_session
    progress = []
    capture = [int(timesteps[len(timesteps) // 2]), int(timesteps[-1])]  # unclamped states
    ours, states = _core.sample(iobinding_denoiser(session), SCHEDULE, method, timesteps,
                                seed=SEED, n=N, capture=capture, progress_every=10,
                                progress=lambda i, total: progress.append(i), **kwargs)
    ref, ref_states = torch_reference(model, method, timesteps, capture, **kwargs)
    assert ours.shape == (N, 1, 28, 28) and ours.dtype == np.float32
    assert np.abs(ours - ref).max() <= UNET_TOL
    for t in capture:  # x_t can leave [-1, 1] with random weights: compare relative to scale
        scale = np.maximum(1.0, np.abs(ref_states[t]))
        assert (np.abs(states[t] - ref_states[t]) / scale).max() <= UNET_TOL
    assert progress[-1] == len(timesteps)
