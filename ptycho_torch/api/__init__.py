"""The monorepo's ``ptycho_torch.api`` names, as Ptychodus 1.7 calls them
(:mod:`ptycho_torch.api.base_api`), and the translation of its settings."""
