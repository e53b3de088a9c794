"""The training engine: data loaders, callbacks, training, batched inference, the output
directory's preflight and resume rules, the one device resolver, CPU threads and the
handling of interrupts.

It builds on the model (``ptycho_torch.model``); the Pty-chi adapter, the pipeline and the
studies build on it.
"""
