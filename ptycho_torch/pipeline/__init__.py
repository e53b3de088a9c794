"""What a command does from start to end, built on the model, the engine and the Pty-chi
adapter: one study row (:mod:`.study`: inputs, probe update, training, reconstruction,
scores, artifacts), reconstructing a scan with a trained model (:mod:`.reconstruct`), the
probe and position update before training (:mod:`.probe_update`), the LSQML polish of a
network's product (:mod:`.polish`) and the stitching checks made before any work
(:mod:`.stitch_preflight`).

The façades (``config_factory``, ``api``), the command line and the studies build on it.
"""
