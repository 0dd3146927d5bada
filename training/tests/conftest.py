import os
import sys
import warnings

import pytest
import torch

TRAINING_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(TRAINING_DIR)
sys.path.insert(0, TRAINING_DIR)
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=UserWarning)
torch.set_num_threads(2)

SMALL = {
    # architecture: (N, M, levels)
    "bmshj2018-factorized": (8, 12, 3),
    "b2018-gdn": (8, 8, 3),
    "mbt2018-mean": (8, 12, 3),
}


@pytest.fixture(params=sorted(SMALL))
def small_model(request):
    from tfci_training.models import build_model

    torch.manual_seed(0)
    N, M, L = SMALL[request.param]
    m = build_model(request.param, N, M, L).eval()
    m.set_gain_ramp(20.0, 80.0)  # random-init latents are tiny; make symbols non-zero
    m.update(force=True, update_quantiles=True)
    return m


@pytest.fixture
def image_u8():
    from tfci_training.synth import synthetic_image

    return torch.from_numpy(synthetic_image(40, 27))
