"""The studies built on the pipeline: the comparison of methods on one scan, the dose study
(:mod:`.dose`), the learning curve, the reference's quality gate and the reference levels.

They build on ``ptycho_torch.pipeline`` (one network row), ``ptycho.reconstruction`` and
the Pty-chi adapter; nothing below imports them.
"""
