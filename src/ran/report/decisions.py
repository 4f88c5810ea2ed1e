"""The decisions this project takes where the paper is silent, numbered as in docs/decisions.md and listed in the
report beside the numbers; code cites them as "decision N"."""

DECISIONS = (
    ("CIFAR layout", "The paper gives no CIFAR network; the project uses narrow pre-activation ResNet-164-like widths "
     "(16-channel stem at 32×32, attention stages at 32, 16 and 8 px with unit outputs 64, 128 and 256), the only "
     "layout that reproduces Table 6's parameter counts; Attention-452's count is reported with its gap."),
    ("Mask poolings", "Each soft-mask branch pools until its smallest map equals the trunk's smallest map, "
     "following the paper's rule for ImageNet."),
    ("Model selection", "The reported error is the test error of the final weights after the last iteration; the test "
     "set never chooses a checkpoint or a hyper-parameter."),
    ("Label noise", "Corrupted labels are drawn once per (noise level, seed) with a seeded generator and saved as "
     "their own artefact; the realised noise fraction is reported beside the nominal one."),
    ("Weight decay", "Applied to convolution and dense kernels only."),
    ("Seeds", "One seed per configuration in the paper profile by default; several seeds give mean ± std with n."),
)

SEED_PROJECT_DEPARTURES = (
    "Its 'spatial' attention normalises across channels (LayerNormalization) instead of the paper's f3.",
    "Its Attention-92 wires the second stage-2 module to the first one's input, so the network is 80 layers deep.",
    "It has no channel attention, no depths beyond 92, no local-convolution mask and no noisy labels.",
    "It trains with Adam (SGD for Attention-92), no weight decay and ±15% shifts instead of pad-and-crop, on 40k "
    "images with a 20% hold-out, early-stopped on training accuracy.",
)
