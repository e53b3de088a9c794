"""Each study's command line without torch: its options class, its parser and the config
(or sweep over seeds) built and validated from its flags.

:mod:`ptycho_torch.studies.commands` parses with these and refuses bad flags in one line
before the study's work (and torch) is imported; the study modules import their options
from here, so the names stay importable where they always were."""
