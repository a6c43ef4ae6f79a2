import os

# Small networks on a 2-core machine run fastest (and reproducibly) on one thread.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
