"""The same model code on a CUDA device: training loss and gradients, streaming and generation,
digests and saved weights agree with the CPU. Skipped where no GPU is present (CI); run on a lent
GPU machine with `python -m pytest tests/test_cuda.py`."""
import copy

import pytest
import torch

from comet_models.chunked import sequence_loss
from comet_models.convert import memory_state_dict, model_fingerprint, save_memory_weights
from comet_models.runtime import feed, generate, new_state
from comet_models.state import tensor_bytes
from tests.tiny import comet_model, sample

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_tensor_bytes_are_the_raw_bytes():
    t = torch.arange(6, dtype=torch.float32).view(2, 3)
    assert tensor_bytes(t) == t.numpy().tobytes()
    assert tensor_bytes(t.t()) == t.t().contiguous().numpy().tobytes()
    assert tensor_bytes(torch.empty(0)) == b""


@cuda
@pytest.mark.parametrize("sink_tokens", [0, 1])
def test_training_loss_and_gradients_match_the_cpu(sink_tokens):
    cpu = comet_model("qwen3", sink_tokens=sink_tokens)
    gpu = copy.deepcopy(cpu).cuda()
    ids, labels = sample(16 * 3 + 5)
    sizes = [16, 16, 16, 5]
    lc, nc = sequence_loss(cpu, ids, labels, sizes)
    lg, ng = sequence_loss(gpu, ids.cuda(), labels.cuda(), sizes)
    assert nc == ng
    torch.testing.assert_close(lg.cpu(), lc, rtol=1e-4, atol=1e-4)
    lc.backward()
    lg.backward()
    for (name, pc), (_, pg) in zip(cpu.named_parameters(), gpu.named_parameters()):
        if pc.grad is not None:
            torch.testing.assert_close(pg.grad.cpu(), pc.grad, rtol=1e-3, atol=1e-4, msg=name)
    with torch.autocast("cuda", dtype=torch.bfloat16):  # the finetune default on a GPU
        lb, _ = sequence_loss(gpu, ids.cuda(), labels.cuda(), sizes)
    assert torch.isfinite(lb) and abs(lb.item() - lc.item()) / lc.item() < 0.05


@cuda
def test_streaming_generation_digests_and_saved_weights_on_the_gpu(tmp_path):
    cpu = comet_model("llama", sink_tokens=1)
    gpu = copy.deepcopy(cpu).cuda()
    ids, _ = sample(16 * 4 + 3)
    text = ids[0].tolist()
    st_c, st_g = feed(cpu, new_state(cpu), text), feed(gpu, new_state(gpu), text)
    assert len(st_g.sha256()) == 64 and st_c.chunks == st_g.chunks == 4  # digest of GPU tensors
    torch.testing.assert_close(st_g.global_state.float().cpu(), st_c.global_state.float(), rtol=1e-3, atol=1e-4)
    out_c = list(generate(cpu, st_c, [5, 6, 7], max_new_tokens=6))
    out_g = list(generate(gpu, st_g, [5, 6, 7], max_new_tokens=6))
    assert out_g == out_c
    assert model_fingerprint(gpu) == model_fingerprint(cpu)  # digests read GPU tensors
    save_memory_weights(gpu, tmp_path / "m.safetensors")
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "m.safetensors"))
    want = memory_state_dict(cpu)
    assert saved.keys() == want.keys()
    for k in want:
        torch.testing.assert_close(saved[k], want[k])
