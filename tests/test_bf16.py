"""The bf16 path on a CPU: TrainConfig(bf16=True) autocasts the model's matrix products to bfloat16 (issue 16).

The same short FPT run (a partial stage, then the full model) in float32 and in bf16: the bf16 run really computes
in bfloat16 (seen from a hook on a linear layer), its losses are finite and within bf16's precision of the float32
run's, and the prompt it trains stays in float32."""
import json
from pathlib import Path
import pytest, torch
from fpt_nb.prompt import load_t5, PromptT5
from fpt_nb.tasks import toy_examples
from fpt_nb.batches import encode
from fpt_nb.scores import NeuronScores
from fpt_nb.partial import FULL, compound_reduction
from fpt_nb.train import Trainer, TrainConfig, Phase


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run(run_dir:Path, bf16:bool) -> tuple[list[float], set, torch.Tensor]:
    "Losses per step, the dtypes the FFN's output projection computed in, and the trained prompt."
    model, tok = load_t5('tiny')
    pt = PromptT5(model, prompt_length=4)
    dtypes = set()
    model.encoder.block[0].layer[-1].DenseReluDense.wo.register_forward_hook(lambda m, a, out: dtypes.add(out.dtype))
    items = encode('toy', tok, toy_examples('train', 32))
    scores = NeuronScores({s: torch.rand(4, 128, generator=torch.Generator().manual_seed(0)) for s in ('encoder', 'decoder')})
    phases = [Phase(compound_reduction(2, 64), 2), Phase(FULL, 2)]
    Trainer(pt, phases, items, TrainConfig(batch_size=8, prompt_length=4, bf16=bf16), run_dir, scores=scores, progress=False).fit()
    losses = [r['loss'] for r in map(json.loads, (run_dir/'log.jsonl').read_text().splitlines()) if r['kind'] == 'step']
    return losses, dtypes, pt.prompt.weight.detach()


def test_bf16_autocast_on_cpu(tmp_path):
    fp32, fp32_dtypes, _ = run(tmp_path/'fp32', bf16=False)
    bf16, bf16_dtypes, prompt = run(tmp_path/'bf16', bf16=True)
    assert fp32_dtypes == {torch.float32} and bf16_dtypes == {torch.bfloat16}
    assert len(bf16) == 4 and all(torch.isfinite(torch.tensor(bf16)))
    assert bf16 != fp32   # computed differently ...
    torch.testing.assert_close(torch.tensor(bf16), torch.tensor(fp32), rtol=0.01, atol=0.0)   # ... and close: measured 0.04-0.3% apart
    assert prompt.dtype == torch.float32 and torch.isfinite(prompt).all()
