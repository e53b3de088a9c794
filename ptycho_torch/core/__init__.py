"""The differentiable physics of ptychography, in torch alone (no Lightning, no files): the
far-field forward model (:mod:`.physics`), the losses (:mod:`.losses`), the overlap
constraint (:mod:`.overlap`), the learned probe correction (:mod:`.learned_probe`), the data
residual (:mod:`.residual`) and where mixed precision stops (:mod:`.precision`).

Everything above builds on it: the generators, the model, the engine, the pipeline.
"""
