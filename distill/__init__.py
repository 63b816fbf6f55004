"""Small AU students distilled from an RTATL teacher (``python -m distill``).

``students`` (timm students by name), ``pretrained`` (offline EfficientNet-Lite ImageNet init),
``teacher`` (the frozen teacher), ``losses`` + ``objective`` (the distillation objective),
``task`` (``StudentTask`` on the shared training engine).
"""
