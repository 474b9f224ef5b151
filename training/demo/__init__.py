"""The pack's default demonstration: its inputs (a reference portrait and a driving video)
and the one command that trains the default model (``train_default_model.sh``)."""
