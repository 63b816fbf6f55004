"""The real-face check (issue 8, item 5): our engine next to MediaPipe on real faces no recipe trains on.

``python -m train.realcheck --engine E [--data DIR] [--out DIR] [--peer mediapipe|none] [--limit N]``
runs ANY engine the runtime loads through the runtime itself (``AUDetector``) on the held-out
identities (``train.data.holdout``) and on the Pexels clip, and MediaPipe's blendshapes -> AUs on
the same faces in a child process. Runtime-only: no torch.
"""
