"""The training engine: data loaders, callbacks, training, batched inference, the output
directory's preflight and resume rules, and the one device resolver.

It builds on the model (``ptycho_torch.model``) and the config factory; the study
pipeline and the studies build on it.
"""
