"""Small AU students distilled from an RTATL teacher (``python -m distill``).

The students themselves are ``train.model.students`` (a registry, like the teacher's backbones);
this package is the distillation procedure: ``config`` (``StudentConfig``: the student and its
loss weights), ``teacher`` (the frozen teacher), ``losses`` + ``objective`` (the distillation
objective), ``task`` (``StudentTask`` on the shared training engine).
"""
